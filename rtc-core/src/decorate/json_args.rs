//! The key arguments of a call as one JSON array (`[42,"ada"]`): written on the stack while
//! they are short, since the near cache looks a call up by them before anything else.

use std::io;
use std::time::Duration;

use smallvec::SmallVec;

use super::arguments::KeyArgument;
use crate::warnings::WarnLimiter;

static ARGUMENT_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));

/// The bytes held on the stack: the JSON of a few small arguments (`[42]`, `[7,"ada"]`) fits,
/// and costs no allocation.
const INLINE: usize = 48;

/// The key arguments of a call as one JSON array, kept for the call's key and its hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonArgs {
    /// UTF-8: written by serde_json, or taken from a `String`.
    json: SmallVec<[u8; INLINE]>,
}

impl JsonArgs {
    /// The JSON's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.json
    }

    /// The JSON as text (`None` only if it were not UTF-8, which serde_json never writes).
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.json).ok()
    }
}

impl From<String> for JsonArgs {
    fn from(json: String) -> Self {
        Self {
            json: SmallVec::from_vec(json.into_bytes()),
        }
    }
}

/// Where a [`JsonArray`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Arguments may be pushed.
    Open,
    /// The closing `]` is written.
    Closed,
    /// An argument did not serialize: there is no array.
    Failed,
}

/// The key arguments as one JSON array, written as they are pushed: into a buffer on the stack
/// while they fit (no allocation, and none of the bookkeeping a growable vector does on each
/// write), into one `Vec` past that, whatever the number of arguments.
#[derive(Debug)]
pub struct JsonArray {
    /// The bytes, while `len` fits.
    inline: [u8; INLINE],
    /// The bytes written; past [`INLINE`], all of them are in `spilled`.
    len: usize,
    /// Empty, without an allocation, until the JSON outgrows `inline`.
    spilled: Vec<u8>,
    progress: Progress,
}

impl JsonArray {
    /// An empty array.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let mut inline = [0; INLINE];
        inline[0] = b'[';
        Self {
            inline,
            len: 1,
            spilled: Vec::new(),
            progress: Progress::Open,
        }
    }

    /// Appends one argument; one that does not serialize (with a warning) leaves no array, and
    /// the call runs uncached.
    pub fn push<A: KeyArgument + ?Sized>(&mut self, argument: &A) {
        if self.progress != Progress::Open {
            return;
        }
        if self.len > 1 {
            self.extend(b",");
        }
        if let Err(error) = argument.write_json(&mut Writer(self)) {
            self.progress = Progress::Failed;
            if let Some(held_back) = ARGUMENT_WARNINGS.permit() {
                tracing::warn!(
                    held_back,
                    "rtc: arguments could not be serialized, the call runs uncached: {error}"
                );
            }
        }
    }

    /// The array (`None` when an argument did not serialize).
    pub fn finish(mut self) -> Option<JsonArgs> {
        self.close();
        let json = match self.progress {
            Progress::Failed => return None,
            _ if self.len <= INLINE => SmallVec::from_buf_and_len(self.inline, self.len),
            _ => SmallVec::from_vec(self.spilled),
        };
        Some(JsonArgs { json })
    }

    /// The array's bytes, read in place (`None` when an argument did not serialize): no
    /// argument may be pushed after it.
    pub fn closed(&mut self) -> Option<&[u8]> {
        self.close();
        (self.progress != Progress::Failed).then(|| self.bytes())
    }

    /// The bytes written, wherever they are.
    fn bytes(&self) -> &[u8] {
        match self.inline.get(..self.len) {
            Some(inline) => inline,
            None => &self.spilled,
        }
    }

    fn close(&mut self) {
        if self.progress == Progress::Open {
            self.extend(b"]");
            self.progress = Progress::Closed;
        }
    }

    #[inline]
    fn extend(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.inline.get_mut(self.len..end) {
            Some(free) => {
                // Byte by byte: the pieces serde_json writes are a few bytes long, shorter
                // than a call to `memcpy` takes.
                for (to, from) in free.iter_mut().zip(bytes) {
                    *to = *from;
                }
            }
            None => self.spill(bytes),
        }
        self.len = end;
    }

    #[cold]
    #[inline(never)]
    fn spill(&mut self, bytes: &[u8]) {
        if self.len <= INLINE {
            self.spilled.reserve(self.len + bytes.len());
            self.spilled.extend_from_slice(&self.inline[..self.len]);
        }
        self.spilled.extend_from_slice(bytes);
    }
}

/// What serde_json writes an argument into.
struct Writer<'a>(&'a mut JsonArray);

impl io::Write for Writer<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.extend(bytes);
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.extend(bytes);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array_of(arguments: &[serde_json::Value]) -> Option<JsonArgs> {
        let mut json = JsonArray::new();
        for argument in arguments {
            json.push(argument);
        }
        json.finish()
    }

    #[test]
    fn writes_what_serde_json_writes_for_the_arguments_as_one_array() {
        let cases = [
            vec![],
            vec![serde_json::json!(42)],
            vec![serde_json::json!(7), serde_json::json!("ada")],
            vec![
                serde_json::json!(u64::MAX),
                serde_json::json!(-1.5),
                serde_json::json!(null),
            ],
            vec![serde_json::json!({"a": [1, 2, "x\"y"]})],
        ];
        for arguments in cases {
            let expected = serde_json::to_string(&arguments).unwrap();
            assert_eq!(array_of(&arguments).unwrap().as_str(), Some(&*expected));
        }
    }

    #[test]
    fn an_array_past_the_inline_bytes_is_whole_wherever_it_crosses_them() {
        // Every length from short to well past `INLINE`, so that the spill happens at each
        // place: inside an argument, at a comma, at the closing bracket.
        for size in 0..3 * INLINE {
            let arguments = [
                serde_json::json!("a".repeat(size)),
                serde_json::json!(size),
                serde_json::json!("b".repeat(size / 2)),
            ];
            let expected = serde_json::to_string(&arguments).unwrap();
            let mut json = JsonArray::new();
            for argument in &arguments {
                json.push(argument);
            }
            assert_eq!(json.closed(), Some(expected.as_bytes()), "size {size}");
            assert_eq!(json.finish().unwrap().as_bytes(), expected.as_bytes());
        }
    }

    #[test]
    fn closing_twice_writes_one_bracket_and_a_failed_argument_leaves_no_array() {
        let mut json = JsonArray::new();
        json.push(&1);
        assert_eq!(json.closed(), Some(&b"[1]"[..]));
        assert_eq!(json.closed(), Some(&b"[1]"[..]));
        assert_eq!(json.finish().unwrap().as_bytes(), b"[1]");

        let unserializable = std::collections::HashMap::from([((1, 2), 3)]);
        let mut json = JsonArray::new();
        json.push(&1);
        json.push(&unserializable);
        json.push(&2);
        assert_eq!(json.closed(), None);
        assert!(json.finish().is_none());
    }
}
