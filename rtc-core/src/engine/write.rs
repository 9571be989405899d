//! Writes: the low-level `set` (stamped with the tags' versions as they are when it lands), and
//! giving versions to tags that have none before a decorated call computes.

use std::time::Duration;

use super::{Flow, Operation, Progress, Received, Reply};
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

/// `set`: stamps `payload` with every tag's version as it is now and writes it. One atomic
/// operation where the backend can stamp by itself; otherwise (a cluster, whose tags live in
/// other slots than the entry) tags are created first, then the stamped entry is written.
/// Outputs whether the entry was written.
pub(crate) struct WriteFlow<'a> {
    entry: &'a str,
    observed: Observed,
    payload: &'a [u8],
    lifetime: Option<Duration>,
    tag_lifetime: Option<Duration>,
    state: WriteState,
}

enum WriteState {
    /// Nothing sent yet; `true` when the backend stamps atomically.
    Start { atomic: bool },
    /// The atomic stamped write was sent.
    WritingStamped,
    /// Missing tags are being created, before the write.
    Creating(Vec<(TagKey, Version)>),
    /// The entry, stamped with the created versions, was sent.
    Writing,
}

impl<'a> WriteFlow<'a> {
    pub(crate) fn new(
        entry: &'a str,
        observed: Observed,
        payload: &'a [u8],
        lifetimes: (Option<Duration>, Option<Duration>),
        atomic: bool,
    ) -> Self {
        Self {
            entry,
            observed,
            payload,
            lifetime: lifetimes.0,
            tag_lifetime: lifetimes.1,
            state: WriteState::Start { atomic },
        }
    }
}

impl Flow for WriteFlow<'_> {
    type Output = bool;

    fn advance(&mut self, reply: Option<Received>) -> Progress<bool> {
        match (&self.state, reply) {
            (WriteState::Start { atomic: true }, None) => {
                self.state = WriteState::WritingStamped;
                Progress::Send
            }
            (WriteState::Start { atomic: false }, None) => {
                self.state = WriteState::Creating(self.observed.proposals());
                Progress::Send
            }
            (WriteState::Creating(proposals), Some(reply)) => {
                match reply.and_then(Reply::into_created) {
                    Ok(versions) if versions.len() == proposals.len() => {
                        self.observed.fill(&versions);
                        self.state = WriteState::Writing;
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
                entry: self.entry,
                observed: &self.observed,
                payload: self.payload,
                lifetime: self.lifetime,
                tag_lifetime: self.tag_lifetime,
            }),
            WriteState::Creating(proposals) => Some(Operation::CreateTags {
                tags: proposals,
                lifetime: self.tag_lifetime,
            }),
            WriteState::Writing => Some(Operation::Write {
                entry: self.entry,
                observed: &self.observed,
                payload: self.payload,
                lifetime: self.lifetime,
            }),
            WriteState::Start { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendError;
    use crate::format::{EntryKeys, KeySpace};

    fn unobserved() -> Observed {
        EntryKeys::new(&KeySpace::new("ns"), "k", ["a"], Vec::new()).unobserved()
    }

    #[test]
    fn a_backend_that_stamps_atomically_gets_one_operation() {
        let mut flow = WriteFlow::new("e", unobserved(), b"v", (None, None), true);
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
        let mut flow = WriteFlow::new("e", unobserved(), b"v", (None, None), false);
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
            Some(Operation::Write { observed, .. }) => {
                let stamped: Vec<_> = observed.all().map(|(_, v)| v.unwrap()).collect();
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
        let mut flow = WriteFlow::new("e", unobserved(), b"v", (None, None), false);
        assert_eq!(flow.advance(None), Progress::Send);
        assert_eq!(
            flow.advance(Some(Err(BackendError::Skipped))),
            Progress::Done(false)
        );
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
