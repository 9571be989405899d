//! Writes: the low-level `set` and `set_many` (stamped with the tags' versions as they are when
//! they land), and giving versions to tags that have none before a decorated call computes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{EntryWrite, Flow, Operation, Progress, Received, Reply};
use crate::format::{Observed, TagKey, Version};

/// Gives every tag observed without a version one (created atomically; where another writer
/// got there first, its version is taken), so that a value computed from here on is stamped
/// with versions from before its computation. Outputs `None` when the backend failed.
pub(crate) struct CreateTagsFlow {
    observed: Option<Observed>,
    proposals: Vec<(TagKey, Version)>,
    lifetime: Option<Duration>,
}

impl CreateTagsFlow {
    pub(crate) fn new(observed: Observed, lifetime: Option<Duration>) -> Self {
        Self {
            proposals: observed.proposals(),
            observed: Some(observed),
            lifetime,
        }
    }
}

impl Flow for CreateTagsFlow {
    type Output = Option<Observed>;

    fn advance(&mut self, reply: Option<Received>) -> Progress<Option<Observed>> {
        let Some(reply) = reply else {
            if self.proposals.is_empty() {
                return Progress::Done(self.observed.take());
            }
            return Progress::Send;
        };
        Progress::Done(
            match (self.observed.take(), reply.and_then(Reply::into_created)) {
                (Some(mut observed), Ok(versions)) if versions.len() == self.proposals.len() => {
                    observed.fill(&versions);
                    Some(observed)
                }
                _ => None,
            },
        )
    }

    fn operation(&self) -> Option<Operation<'_>> {
        Some(Operation::CreateTags {
            tags: &self.proposals,
            lifetime: self.lifetime,
        })
    }
}

/// `set` and `set_many`: stamps each entry with its tags' versions as they are when it lands
/// and writes it. One atomic operation for the whole batch where the backend can stamp by
/// itself; otherwise (a cluster, whose tags live in other slots than the entries) every tag of
/// the batch is created first, once, then the stamped entries are written. Outputs whether the
/// entries were written (all of them, or none when the backend failed).
pub(crate) struct WriteFlow<'a> {
    writes: Vec<EntryWrite<'a>>,
    lifetime: Option<Duration>,
    tag_lifetime: Option<Duration>,
    state: WriteState,
}

enum WriteState {
    /// Nothing sent yet; `true` when the backend stamps atomically.
    Start { atomic: bool },
    /// The atomic stamped write was sent.
    WritingStamped,
    /// Missing tags are being created, before the write: every tag of the batch, once.
    Creating(Vec<(TagKey, Version)>),
    /// The entries, stamped with the created versions, were sent.
    Writing,
}

impl<'a> WriteFlow<'a> {
    /// Writes `writes` in order (of two writes of one entry, the later one stays). Each
    /// write's `observed` names its tags; their versions are filled in here.
    pub(crate) fn new(
        writes: Vec<EntryWrite<'a>>,
        lifetimes: (Option<Duration>, Option<Duration>),
        atomic: bool,
    ) -> Self {
        Self {
            writes,
            lifetime: lifetimes.0,
            tag_lifetime: lifetimes.1,
            state: WriteState::Start { atomic },
        }
    }

    /// True when every tag of every write already has its version.
    fn stamped(&self) -> bool {
        self.writes
            .iter()
            .all(|write| write.observed.all().all(|(_, version)| version.is_some()))
    }

    /// A proposed version for every tag of the batch that has none, each tag once.
    fn proposals(&self) -> Vec<(TagKey, Version)> {
        let mut seen = HashSet::new();
        self.writes
            .iter()
            .flat_map(|write| write.observed.all())
            .filter(|(tag, version)| version.is_none() && seen.insert(tag))
            .map(|(tag, _)| (tag.clone(), Version::fresh()))
            .collect()
    }

    /// Stamps every write with the versions the tags of `proposals` have now.
    fn fill(&mut self, proposals: &[(TagKey, Version)], versions: &[Version]) {
        let created: HashMap<&TagKey, Version> = proposals
            .iter()
            .map(|(tag, _)| tag)
            .zip(versions.iter().copied())
            .collect();
        for write in &mut self.writes {
            let observed = &mut write.observed;
            for (tag, slot) in observed.canonical.iter_mut().chain(&mut observed.implicit) {
                if slot.is_none() {
                    *slot = created.get(&*tag).copied();
                }
            }
        }
    }
}

impl Flow for WriteFlow<'_> {
    type Output = bool;

    fn advance(&mut self, reply: Option<Received>) -> Progress<bool> {
        let state = std::mem::replace(&mut self.state, WriteState::Writing);
        match (state, reply) {
            (WriteState::Start { .. }, None) if self.writes.is_empty() => Progress::Done(true),
            // Every version is known (tracked by the near cache): plain writes.
            (WriteState::Start { .. }, None) if self.stamped() => {
                self.state = WriteState::Writing;
                Progress::Send
            }
            (WriteState::Start { atomic: true }, None) => {
                self.state = WriteState::WritingStamped;
                Progress::Send
            }
            (WriteState::Start { atomic: false }, None) => {
                self.state = WriteState::Creating(self.proposals());
                Progress::Send
            }
            (WriteState::Creating(proposals), Some(reply)) => {
                match reply.and_then(Reply::into_created) {
                    Ok(versions) if versions.len() == proposals.len() => {
                        self.fill(&proposals, &versions);
                        Progress::Send
                    }
                    _ => Progress::Done(false),
                }
            }
            (WriteState::WritingStamped | WriteState::Writing, Some(reply)) => {
                Progress::Done(reply.and_then(Reply::into_done).unwrap_or(false))
            }
            _ => Progress::Done(false),
        }
    }

    fn operation(&self) -> Option<Operation<'_>> {
        match &self.state {
            WriteState::WritingStamped => Some(Operation::WriteStamped {
                writes: &self.writes,
                lifetime: self.lifetime,
                tag_lifetime: self.tag_lifetime,
            }),
            WriteState::Creating(proposals) => Some(Operation::CreateTags {
                tags: proposals,
                lifetime: self.tag_lifetime,
            }),
            WriteState::Writing => Some(Operation::Write {
                writes: &self.writes,
                lifetime: self.lifetime,
            }),
            WriteState::Start { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BackendError;
    use crate::format::{EntryKeys, KeySpace};

    fn unobserved() -> Observed {
        EntryKeys::new(&KeySpace::new("ns"), &["k"], ["a"], Vec::new()).unobserved()
    }

    fn one(observed: Observed) -> Vec<EntryWrite<'static>> {
        vec![EntryWrite {
            entry: "e",
            observed,
            payload: b"v",
        }]
    }

    #[test]
    fn known_versions_are_one_plain_write_and_an_old_one_reads_as_a_miss() {
        use crate::engine::Expiry;
        use crate::engine::{Lookup, ReadFlow, ReadReply};

        let space = KeySpace::new("ns");
        let keys = EntryKeys::new(&space, &["k"], ["a"], Vec::new());
        let old = [Some(Version::from_u64(1)), Some(Version::from_u64(2))];
        let writes = vec![EntryWrite {
            entry: &keys.entry,
            observed: keys.observe(&old),
            payload: b"\x00v",
        }];
        let mut flow = WriteFlow::new(writes, (None, None), true);
        assert_eq!(flow.advance(None), Progress::Send);
        let Some(Operation::Write { writes, .. }) = flow.operation() else {
            panic!("known versions need no script: {:?}", flow.operation());
        };
        let stored = crate::format::encode(&writes[0].observed, writes[0].payload).unwrap();
        // Meanwhile the tag `a` was invalidated elsewhere: the stamp is older than its version.
        let now = vec![Some(Version::from_u64(1)), Some(Version::from_u64(3))];
        let mut read = ReadFlow::new(&space, &keys);
        assert_eq!(read.advance(None), Progress::Send);
        let reply = Reply::Read(ReadReply {
            entry: Some(stored),
            versions: now,
            ttl: crate::engine::Ttl::Unasked,
            expiry: Expiry::Unknown,
        });
        assert!(matches!(
            read.advance(Some(Ok(reply))),
            Progress::Done(Lookup::Miss(_))
        ));
    }

    #[test]
    fn a_backend_that_stamps_atomically_gets_one_operation() {
        let mut flow = WriteFlow::new(one(unobserved()), (None, None), true);
        assert_eq!(flow.advance(None), Progress::Send);
        assert!(matches!(
            flow.operation(),
            Some(Operation::WriteStamped { .. })
        ));
        assert_eq!(
            flow.advance(Some(Ok(Reply::Done(true)))),
            Progress::Done(true)
        );
    }

    #[test]
    fn otherwise_tags_are_created_then_the_stamped_entry_is_written() {
        let mut flow = WriteFlow::new(one(unobserved()), (None, None), false);
        assert_eq!(flow.advance(None), Progress::Send);
        match flow.operation() {
            Some(Operation::CreateTags { tags, .. }) => assert_eq!(tags.len(), 2),
            other => panic!("expected the tags to be created first, got {other:?}"),
        }
        let created = vec![Version::from_u64(1), Version::from_u64(2)];
        assert_eq!(
            flow.advance(Some(Ok(Reply::Created(created.clone())))),
            Progress::Send
        );
        match flow.operation() {
            Some(Operation::Write { writes, .. }) => {
                let stamped: Vec<_> = writes[0].observed.all().map(|(_, v)| v.unwrap()).collect();
                assert_eq!(stamped, created);
            }
            other => panic!("expected the stamped write, got {other:?}"),
        }
        assert_eq!(
            flow.advance(Some(Ok(Reply::Done(true)))),
            Progress::Done(true)
        );
    }

    #[test]
    fn a_failed_tag_creation_writes_nothing() {
        let mut flow = WriteFlow::new(one(unobserved()), (None, None), false);
        assert_eq!(flow.advance(None), Progress::Send);
        assert_eq!(
            flow.advance(Some(Err(BackendError::Skipped))),
            Progress::Done(false)
        );
    }

    #[test]
    fn a_batch_creates_each_tag_once_and_stamps_every_entry_with_it() {
        let space = KeySpace::new("ns");
        let keys = [
            EntryKeys::new(&space, &["k1"], ["shared", "own1"], Vec::new()),
            EntryKeys::new(&space, &["k2"], ["shared", "own2"], Vec::new()),
        ];
        let writes = keys
            .iter()
            .map(|keys| EntryWrite {
                entry: &keys.entry,
                observed: keys.unobserved(),
                payload: b"v",
            })
            .collect();
        let mut flow = WriteFlow::new(writes, (None, None), false);
        assert_eq!(flow.advance(None), Progress::Send);
        let proposals = match flow.operation() {
            Some(Operation::CreateTags { tags, .. }) => tags.to_vec(),
            other => panic!("expected the tags to be created first, got {other:?}"),
        };
        let mut expected = keys[0].tags().to_vec();
        for tag in keys[1].tags() {
            if !expected.contains(tag) {
                expected.push(tag.clone());
            }
        }
        let proposed: Vec<_> = proposals.iter().map(|(tag, _)| tag.clone()).collect();
        assert_eq!(proposed, expected, "every tag of the batch, each once");
        let created: Vec<_> = (1..=4).map(Version::from_u64).collect();
        assert_eq!(
            flow.advance(Some(Ok(Reply::Created(created.clone())))),
            Progress::Send
        );
        let Some(Operation::Write { writes, .. }) = flow.operation() else {
            panic!("expected the stamped writes")
        };
        let version_of = |tag: &TagKey| {
            let at = proposed
                .iter()
                .position(|proposed| proposed == tag)
                .unwrap();
            created[at]
        };
        for write in writes {
            for (tag, version) in write.observed.all() {
                assert_eq!(*version, Some(version_of(tag)));
            }
        }
        assert_eq!(
            flow.advance(Some(Ok(Reply::Done(true)))),
            Progress::Done(true)
        );
    }

    #[test]
    fn an_empty_batch_sends_nothing() {
        for atomic in [true, false] {
            let mut flow = WriteFlow::new(Vec::new(), (None, None), atomic);
            assert_eq!(flow.advance(None), Progress::Done(true));
        }
    }

    #[test]
    fn versions_are_created_only_for_tags_that_have_none() {
        let mut observed = unobserved();
        observed.canonical[0].1 = Some(Version::from_u64(7));
        let mut flow = CreateTagsFlow::new(observed, None);
        assert_eq!(flow.advance(None), Progress::Send);
        match flow.operation() {
            Some(Operation::CreateTags { tags, .. }) => assert_eq!(tags.len(), 1),
            other => panic!("expected one tag to be created, got {other:?}"),
        }
        let Progress::Done(Some(filled)) =
            flow.advance(Some(Ok(Reply::Created(vec![Version::from_u64(8)]))))
        else {
            panic!("expected the versions")
        };
        let versions: Vec<_> = filled.all().map(|(_, v)| v.unwrap()).collect();
        assert_eq!(versions, vec![Version::from_u64(7), Version::from_u64(8)]);

        let mut complete = CreateTagsFlow::new(filled, None);
        assert!(matches!(complete.advance(None), Progress::Done(Some(_))));
    }
}
