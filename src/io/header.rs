//! Checks a safetensors header's arithmetic before the `safetensors` crate sees it.
//!
//! safetensors 0.7 adds the declared data length to the header length unchecked, so a
//! crafted header whose sizes add past 2⁶⁴ panics in debug builds. [`check`] parses the
//! header itself and validates every size and offset with checked arithmetic; a buffer it
//! accepts cannot overflow the crate's sums. Nothing here allocates more than the header's
//! own size (at most [`MAX_HEADER`] bytes), whatever the header declares.

use crate::Error;
use safetensors::tensor::TensorInfo;

/// The largest header the `safetensors` crate accepts.
pub(super) const MAX_HEADER: u64 = 100_000_000;

fn bad(message: String) -> Error {
    Error::BadHeader { message }
}

/// Checks that `bytes` is a well-formed safetensors buffer: an 8-byte little-endian header
/// length, a UTF-8 JSON header mapping names to tensors (plus an optional `__metadata__`
/// map of strings), and tensor data that exactly fills the rest, tensor after tensor.
///
/// A buffer shorter than its header says is [`Error::Truncated`]; anything else wrong is
/// [`Error::BadHeader`], naming the tensor where there is one.
pub(super) fn check(bytes: &[u8]) -> Result<(), Error> {
    let Some(len_bytes) = bytes.get(..8) else {
        return Err(Error::Truncated {
            message: format!("the file has {} bytes, fewer than the 8-byte header length", bytes.len()),
        });
    };
    let n = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    if n > MAX_HEADER {
        return Err(bad(format!("the header length {n} exceeds the limit of {MAX_HEADER} bytes")));
    }
    let after_len = &bytes[8..];
    // n ≤ MAX_HEADER, so it fits in usize.
    let Some(header) = after_len.get(..n as usize) else {
        return Err(Error::Truncated {
            message: format!("the header says it is {n} bytes long but only {} follow", after_len.len()),
        });
    };
    let data_len = (after_len.len() - header.len()) as u64;
    let header = std::str::from_utf8(header).map_err(|e| bad(format!("the header is not UTF-8: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_str(header).map_err(|e| bad(format!("invalid JSON in header: {e}")))?;
    let entries = json.as_object().ok_or_else(|| bad("the header is not a JSON object".into()))?;

    // (start, end, name) of every tensor.
    let mut spans = Vec::with_capacity(entries.len());
    for (name, entry) in entries {
        if name == "__metadata__" {
            let strings = entry.as_object().is_some_and(|m| m.values().all(|v| v.is_string()));
            if !strings {
                return Err(bad("`__metadata__` is not a map of strings".into()));
            }
            continue;
        }
        let info: TensorInfo =
            serde_json::from_value(entry.clone()).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        let (start, end) = (info.data_offsets.0 as u64, info.data_offsets.1 as u64);
        let elements = info.shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        // Bits in u128: a u64 element count times at most 64 bits cannot overflow it.
        let bits = elements.map(|e| e as u128 * info.dtype.bitsize() as u128);
        let size = match bits {
            Some(bits) if bits % 8 == 0 => u64::try_from(bits / 8).ok(),
            Some(_) => {
                return Err(bad(format!(
                    "tensor `{name}`: shape {:?} of {:?} is not a whole number of bytes",
                    info.shape, info.dtype
                )))
            }
            None => None,
        }
        .ok_or_else(|| {
            bad(format!("tensor `{name}`: shape {:?} of {:?} holds 2^64 bytes or more", info.shape, info.dtype))
        })?;
        if end < start {
            return Err(bad(format!("tensor `{name}`: data_offsets [{start}, {end}] end before they start")));
        }
        if end - start != size {
            return Err(bad(format!(
                "tensor `{name}`: data_offsets [{start}, {end}] span {} bytes but shape {:?} of {:?} needs {size}",
                end - start,
                info.shape,
                info.dtype
            )));
        }
        spans.push((start, end, name));
    }

    // The tensors must tile the data from byte 0, in offset order, without gaps or overlaps.
    spans.sort();
    let mut total = 0u64;
    for &(start, end, name) in &spans {
        if start != total {
            return Err(bad(format!(
                "tensor `{name}`: data_offsets [{start}, {end}] do not start where the previous tensor ends ({total})"
            )));
        }
        total = total
            .checked_add(end - start)
            .ok_or_else(|| bad(format!("tensor `{name}`: the tensor sizes add up past 2^64 bytes")))?;
        if total > data_len {
            return Err(Error::Truncated {
                message: format!(
                    "tensor `{name}` ends at byte {end} of the data, but only {data_len} bytes of data follow the header"
                ),
            });
        }
    }
    if total < data_len {
        return Err(bad(format!(
            "{} bytes follow the {total} bytes of tensor data the header declares",
            data_len - total
        )));
    }
    Ok(())
}
