//! Tag versions: 64 random bits, fresh for every creation and every invalidation.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Size of a stored version in bytes.
pub(crate) const VERSION_LEN: usize = 8;

/// One version of one tag, as stored in Redis (8 raw bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Version([u8; VERSION_LEN]);

impl Version {
    /// A version no other writer will pick: SipHash, keyed from the OS's randomness once per
    /// process, over the process id, the time and a counter.
    pub(crate) fn fresh() -> Self {
        Self::from_u64(unique_u64())
    }

    pub(crate) const fn from_u64(value: u64) -> Self {
        Self(value.to_le_bytes())
    }

    /// Reads a stored version; anything that is not exactly 8 bytes is no version.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// 64 bits that no other call, thread or process obtains (with overwhelming probability).
pub(crate) fn unique_u64() -> u64 {
    static KEYS: OnceLock<(RandomState, u32)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (keys, process) = KEYS.get_or_init(|| (RandomState::new(), std::process::id()));
    let mut hasher = keys.build_hasher();
    hasher.write_u32(*process);
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fresh_versions_do_not_repeat() {
        let seen: HashSet<Version> = (0..10_000).map(|_| Version::fresh()).collect();
        assert_eq!(seen.len(), 10_000);
    }

    #[test]
    fn only_eight_bytes_make_a_version() {
        assert!(Version::from_bytes(b"12345678").is_some());
        assert!(Version::from_bytes(b"1234567").is_none());
        assert!(Version::from_bytes(b"123456789").is_none());
    }
}
