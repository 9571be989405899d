//! How operations and replies read in a violation's trace.

use crate::engine::{Operation, Reply};
use crate::error::BackendError;

/// An operation, for the trace.
pub(super) fn describe(operation: &Operation<'_>) -> String {
    match operation {
        Operation::Read { .. } => "Read".into(),
        Operation::Acquire { baton, .. } => match baton {
            Some(_) => "Acquire (passing the token on)".into(),
            None => "Acquire".into(),
        },
        Operation::Release { .. } => "Release".into(),
        Operation::WaitForWake { timeout, .. } => {
            format!("WaitForWake ({}ms)", timeout.as_millis())
        }
        Operation::CreateTags { tags, .. } => format!("CreateTags ({})", tags.len()),
        Operation::WriteUnlessDeleted { .. } => "WriteUnlessDeleted".into(),
        Operation::Invalidate { .. } => "Invalidate".into(),
        Operation::Delete { .. } => "Delete (leaves a tombstone)".into(),
        other => format!("{} operation", other.verb()),
    }
}

/// A reply, for the trace.
pub(super) fn describe_reply(reply: &Result<Reply, BackendError>) -> String {
    match reply {
        Ok(Reply::Read(read)) => format!("Read (entry {})", found(&read.entry)),
        Ok(Reply::Lock(attempt)) => format!(
            "Lock ({}, {}ms left; entry {})",
            match attempt.holder {
                Some(_) => "held by another",
                None => "taken",
            },
            attempt.lock_ttl.as_millis(),
            found(&attempt.read.entry),
        ),
        Ok(Reply::Woken(Some(_))) => "Woken (a token)".into(),
        Ok(Reply::Woken(None)) => "Woken (timed out)".into(),
        Ok(Reply::Done(done)) => format!("Done({done})"),
        Ok(Reply::Created(versions)) => format!("Created ({})", versions.len()),
        Ok(Reply::Ok) => "Ok".into(),
        Ok(Reply::Many(many)) => {
            let found: Vec<&str> = many.entries.iter().map(found).collect();
            format!("Many (entries {})", found.join(", "))
        }
        Ok(Reply::Versions(versions) | Reply::VersionsAndTtls(versions, _)) => {
            format!("Versions ({})", versions.len())
        }
        Err(error) => format!("error: {error}"),
    }
}

fn found(entry: &Option<Vec<u8>>) -> &'static str {
    match entry {
        Some(_) => "found",
        None => "missing",
    }
}
