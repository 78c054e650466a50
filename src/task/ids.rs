//! Hash maps keyed by the ids this crate hands out or reads: task ids,
//! dialog ids, poller keys.
//!
//! std's SipHash costs ~140 instructions per `u64` key; a lock dialog
//! looks up or stores its ids about a dozen times on the root (~5% of the
//! root's work per dialog). Here a key is mixed by one folded multiply
//! (the 128-bit product's halves XORed) after an XOR with a per-map
//! random seed: dialog ids come from peers, and without the seed a peer
//! could pick ids that all land in one bucket.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A map from ids to `V`, with [`IdHasher`].
pub(crate) type IdMap<V> = HashMap<u64, V, IdState>;

/// Makes [`IdHasher`]s seeded at random, one seed per map.
#[derive(Clone)]
pub(crate) struct IdState(u64);

impl Default for IdState {
    fn default() -> Self {
        // std's own random keys (per thread, bumped per use): no new
        // source of randomness, and cheap.
        IdState(std::hash::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl BuildHasher for IdState {
    type Hasher = IdHasher;

    #[inline]
    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

/// Hashes one `u64` (other input is folded in word by word, for
/// completeness; maps here only ever hash a `u64`).
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn write_u64(&mut self, n: u64) {
        // A folded multiply: the product's high half depends on every
        // bit of the key, so the low bits that pick a bucket do too.
        let full = u128::from(self.0 ^ n) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (full as u64) ^ ((full >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_store_and_find_ids() {
        let mut m: IdMap<u64> = IdMap::default();
        for id in (0..1000).chain([u64::MAX, 1 << 63, 1 << 32]) {
            m.insert(id, !id);
        }
        for id in (0..1000).chain([u64::MAX, 1 << 63, 1 << 32]) {
            assert_eq!(m.get(&id), Some(&!id));
        }
        assert_eq!(m.remove(&5), Some(!5));
        assert_eq!(m.get(&5), None);
    }

    #[test]
    fn ids_that_differ_in_high_bits_only_spread_over_buckets() {
        let state = IdState::default();
        // 256 keys that differ only above bit 40: the low 8 bits of their
        // hashes (a 256-bucket table's index) should take many values.
        let mut low: Vec<u64> = (0..256u64)
            .map(|i| state.hash_one(i << 40) & 0xff)
            .collect();
        low.sort_unstable();
        low.dedup();
        assert!(low.len() > 128, "{} distinct buckets", low.len());
    }

    #[test]
    fn maps_are_seeded_apart() {
        let (a, b) = (IdState::default(), IdState::default());
        assert_ne!(a.hash_one(1u64), b.hash_one(1u64));
    }
}
