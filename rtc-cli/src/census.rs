//! Counting a namespace's keys by kind with `SCAN` over its key pattern (never `KEYS`), and
//! estimating their memory from a sample measured with `MEMORY USAGE`.

use crate::error::CliError;
use crate::target::Node;

/// How many keys one `SCAN` step asks the server to look at.
const SCAN_COUNT: usize = 1000;

/// After how many keys found a progress line is printed (on stderr).
pub const PROGRESS_EVERY: u64 = 10_000;

/// What a namespace holds, by kind of key (the second field of `rtc:<kind>:<ns>:<hash>`).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Census {
    /// Every key matching the namespace's pattern.
    pub keys: u64,
    /// Entries holding a value (format byte 1, 2, 3 for one with a stale window, or 4 for one
    /// written over a tombstone).
    pub entries: u64,
    /// Entries left by `delete` (format byte 0).
    pub tombstones: u64,
    /// Entries of a format this tool does not know (a newer rtc).
    pub unknown_entries: u64,
    /// Tag versions (user tags, the namespace's tag, decorated functions' tags).
    pub tags: u64,
    /// Stampede locks held now.
    pub locks: u64,
    /// Lists that wake lock waiters.
    pub wake_lists: u64,
    /// Keys of another kind.
    pub other: u64,
    /// Keys measured with `MEMORY USAGE`.
    pub memory_samples: u64,
    /// Their total size in bytes.
    pub memory_sampled_bytes: u64,
}

impl Census {
    /// The namespace's estimated memory in bytes: the sampled average times the key count.
    pub fn memory_estimate(&self) -> u64 {
        if self.memory_samples == 0 {
            return 0;
        }
        let average = self.memory_sampled_bytes as f64 / self.memory_samples as f64;
        (average * self.keys as f64).round() as u64
    }

    /// Whether any key matches `pattern` on `node`: a `SCAN` that stops at the first one.
    pub fn any_key(
        node: &Node,
        connection: &mut redis::Connection,
        pattern: &str,
    ) -> Result<bool, CliError> {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = scan_step(connection, cursor, pattern)
                .map_err(|error| CliError::from_redis(&node.address, &error))?;
            if !keys.is_empty() {
                return Ok(true);
            }
            if next == 0 {
                return Ok(false);
            }
            cursor = next;
        }
    }

    /// Counts the keys of `pattern` on `node`, measuring at most `samples` keys in all;
    /// `progress` is called every [`PROGRESS_EVERY`] keys.
    pub fn scan(
        &mut self,
        node: &Node,
        connection: &mut redis::Connection,
        pattern: &str,
        samples: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), CliError> {
        let failed = |error: redis::RedisError| CliError::from_redis(&node.address, &error);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys) = scan_step(connection, cursor, pattern).map_err(failed)?;
            let measured = keys
                .len()
                .min(samples.saturating_sub(self.memory_samples) as usize);
            let mut details = redis::pipe();
            let mut asked = measured;
            for key in keys.iter().filter(|key| kind(key) == Some(b'e')) {
                details.cmd("GETRANGE").arg(key).arg(0).arg(0);
                asked += 1;
            }
            for key in &keys[..measured] {
                details.cmd("MEMORY").arg("USAGE").arg(key);
            }
            let mut replies: Vec<redis::Value> = if asked == 0 {
                Vec::new()
            } else {
                details.query(connection).map_err(failed)?
            };
            let sizes = replies.split_off(replies.len() - measured);
            let mut first_bytes = replies.into_iter().map(|value| {
                redis::from_redis_value::<Vec<u8>>(value)
                    .unwrap_or_default()
                    .first()
                    .copied()
            });
            for key in &keys {
                let first = if kind(key) == Some(b'e') {
                    first_bytes.next().flatten()
                } else {
                    None
                };
                self.count(key, first);
                if self.keys.is_multiple_of(PROGRESS_EVERY) {
                    progress(self.keys);
                }
            }
            let sizes = sizes
                .into_iter()
                .filter_map(|value| redis::from_redis_value::<u64>(value).ok());
            for size in sizes {
                self.memory_samples += 1;
                self.memory_sampled_bytes += size;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// Files one key under its kind; `first` is its value's first byte (`None`: not a string,
    /// or gone since the scan saw it).
    fn count(&mut self, key: &[u8], first: Option<u8>) {
        self.keys += 1;
        let counter = match kind(key) {
            Some(b'e') => match first {
                // Entry formats 1 (rtc 0.1), 2 (the codec recorded), 3 (a stale window) and
                // 4 (descending from a tombstone).
                Some(1..=4) => &mut self.entries,
                Some(0) => &mut self.tombstones,
                _ => &mut self.unknown_entries,
            },
            Some(b't') => &mut self.tags,
            Some(b'l') => &mut self.locks,
            Some(b'w') => &mut self.wake_lists,
            _ => &mut self.other,
        };
        *counter += 1;
    }
}

/// One `SCAN` step: the next cursor and the keys found.
fn scan_step(
    connection: &mut redis::Connection,
    cursor: u64,
    pattern: &str,
) -> redis::RedisResult<(u64, Vec<Vec<u8>>)> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT)
        .query(connection)
}

/// The kind letter of an rtc key (`rtc:<kind>:…`).
fn kind(key: &[u8]) -> Option<u8> {
    key.get(4).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_filed_by_kind_and_entries_by_format_byte() {
        let mut census = Census::default();
        census.count(b"rtc:e:0123456789ab:ff", Some(1));
        census.count(b"rtc:e:0123456789ab:fe", Some(0));
        census.count(b"rtc:e:0123456789ab:fd", Some(7));
        census.count(b"rtc:e:0123456789ab:fc", Some(3));
        census.count(b"rtc:t:0123456789ab:ff", Some(9));
        census.count(b"rtc:l:0123456789ab:{ff}", Some(b'x'));
        census.count(b"rtc:w:0123456789ab:{ff}", None);
        census.count(b"rtc:c:0123456789ab:probe", None);
        assert_eq!(
            (
                census.keys,
                census.entries,
                census.tombstones,
                census.unknown_entries
            ),
            (8, 2, 1, 1)
        );
        assert_eq!(
            (census.tags, census.locks, census.wake_lists, census.other),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn memory_is_the_sampled_average_times_the_key_count() {
        let census = Census {
            keys: 10,
            memory_samples: 4,
            memory_sampled_bytes: 400,
            ..Census::default()
        };
        assert_eq!(census.memory_estimate(), 1000);
        assert_eq!(Census::default().memory_estimate(), 0);
    }
}
