//! The Threefry-2x32 kernel behind `random_bits` (see [`crate::ops::random`]).
//!
//! Threefry is a counter-based generator (Salmon et al., "Parallel random
//! numbers: as easy as 1, 2, 3", SC 2011): a keyed bijection of a 64-bit
//! counter, here with 20 rounds as in JAX and Random123. Each output depends
//! only on the key and the element's index, so the kernel splits the work
//! over threads freely without changing a single number.

use crate::array::{Array, Data};
use crate::TensorType;
use rayon::prelude::*;

const ROTATIONS: [[u32; 4]; 2] = [[13, 15, 26, 6], [17, 29, 16, 24]];

/// Threefry-2x32 with 20 rounds: the keyed permutation of `counter` under `key`.
///
/// Known-answer values from Random123 (also JAX's tests):
///
/// ```
/// use cotangent::backend::cpu::random::threefry2x32;
/// assert_eq!(threefry2x32([0, 0], [0, 0]), [0x6b200159, 0x99ba4efe]);
/// assert_eq!(
///     threefry2x32([0x13198a2e, 0x03707344], [0x243f6a88, 0x85a308d3]),
///     [0xc4923a9c, 0x483df7a0]
/// );
/// ```
pub fn threefry2x32(key: [u32; 2], counter: [u32; 2]) -> [u32; 2] {
    let ks = [key[0], key[1], key[0] ^ key[1] ^ 0x1BD1_1BDA];
    let mut x0 = counter[0].wrapping_add(ks[0]);
    let mut x1 = counter[1].wrapping_add(ks[1]);
    for block in 0..5 {
        for &r in &ROTATIONS[block % 2] {
            x0 = x0.wrapping_add(x1);
            x1 = x1.rotate_left(r);
            x1 ^= x0;
        }
        x0 = x0.wrapping_add(ks[(block + 1) % 3]);
        x1 = x1.wrapping_add(ks[(block + 2) % 3]).wrapping_add(block as u32 + 1);
    }
    [x0, x1]
}

/// Fills `out` with the bits of elements `start..start + out.len()` of one key's stream.
fn fill(key: [u32; 2], start: usize, out: &mut [i64]) {
    let mut cached: Option<(usize, [u32; 2])> = None;
    for (k, o) in out.iter_mut().enumerate() {
        let i = start + k;
        let block = i / 2;
        let words = match cached {
            Some((b, w)) if b == block => w,
            _ => {
                let b = block as u64;
                let w = threefry2x32(key, [(b >> 32) as u32, b as u32]);
                cached = Some((block, w));
                w
            }
        };
        *o = words[i % 2] as i64;
    }
}

/// Elements per parallel task: large enough that scheduling costs nothing.
const CHUNK: usize = 1 << 14;

/// `random_bits`: one stream per key word pair, `out.shape = key.shape[..-1] ++ shape`.
pub(crate) fn random_bits(key: &Array, out: &TensorType) -> Array {
    let keys = key.as_slice::<i64>().expect("i64 key (checked by the type rule)");
    let n_keys = keys.len() / 2;
    let total = out.numel();
    let per_key = total.checked_div(n_keys).unwrap_or(0);
    let mut data = vec![0i64; total];
    if per_key > 0 {
        let task = |(c, chunk): (usize, &mut [i64])| {
            let first = c * CHUNK;
            let mut pos = 0;
            while pos < chunk.len() {
                let flat = first + pos;
                let (k, i) = (flat / per_key, flat % per_key);
                let len = (per_key - i).min(chunk.len() - pos);
                let kw = [keys[2 * k] as u32, keys[2 * k + 1] as u32];
                fill(kw, i, &mut chunk[pos..pos + len]);
                pos += len;
            }
        };
        if total > CHUNK && crate::threads::parallel() {
            data.par_chunks_mut(CHUNK).enumerate().for_each(task);
        } else {
            data.chunks_mut(CHUNK).enumerate().for_each(task);
        }
    }
    Array::new(out.shape.clone(), Data::I64(data))
}
