//! A fast hasher for the compiler's maps keyed by small integers (node and slot indices,
//! operand lists): the multiply-rotate hash of rustc's `FxHasher` (with rustc-hash 2's final rotation). The default SipHash
//! resists hash flooding, which keys the compiler makes itself do not need, and costs
//! several times more per lookup on graphs of 10⁵ nodes. Only lookups use these maps
//! (nothing iterates them), so the hasher cannot change what the compiler produces.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// rustc's `FxHasher`: per word, rotate, xor, multiply.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The rotation (as rustc-hash 2 does) brings the best-mixed middle bits of the last
    /// product to the top, where hashbrown takes its 7-bit tags from.
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

/// A `HashMap` hashed by [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn hash<T: Hash>(t: &T) -> u64 {
        let mut h = FxHasher::default();
        t.hash(&mut h);
        h.finish()
    }

    #[test]
    fn equal_keys_hash_equal_and_small_keys_spread() {
        assert_eq!(hash(&(3usize, vec![1u32, 2])), hash(&(3usize, vec![1u32, 2])));
        assert_ne!(hash(&vec![1u32, 2]), hash(&vec![2u32, 1]));
        // Consecutive indices spread over 1024 buckets about as random keys would (~647
        // distinct), in the low bits (hashbrown's bucket) and the top bits (its tags).
        let top: std::collections::HashSet<u64> = (0..1024u64).map(|i| hash(&i) >> 54).collect();
        let low: std::collections::HashSet<u64> = (0..1024u64).map(|i| hash(&i) & 1023).collect();
        assert!(top.len() > 450 && low.len() > 450, "{} {}", top.len(), low.len());
        let mut m: FxHashMap<usize, usize> = FxHashMap::default();
        m.insert(7, 1);
        assert_eq!(m.get(&7), Some(&1));
    }
}
