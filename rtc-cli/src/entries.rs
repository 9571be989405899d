//! The commands that go through the rtc library itself: invalidate, get, delete.

use rtc::TaggedCache;

use crate::census::Census;
use crate::cli::EntryArgs;
use crate::error::CliError;
use crate::exit::Outcome;
use crate::target::Target;

/// `rtc invalidate TAG...`.
pub fn invalidate(target: &Target, tags: &[String]) -> Result<(), CliError> {
    let cache = reachable_cache(target)?;
    if !cache.invalidate(tags) {
        return Err(not_taken("the invalidation"));
    }
    println!(
        "invalidated {} tag{} in namespace '{}': {}",
        tags.len(),
        if tags.len() == 1 { "" } else { "s" },
        target.namespace(),
        tags.join(", ")
    );
    Ok(())
}

/// `rtc invalidate-all`.
pub fn invalidate_all(target: &Target) -> Result<(), CliError> {
    let cache = reachable_cache(target)?;
    if !cache.invalidate_all() {
        return Err(not_taken("the invalidation"));
    }
    println!(
        "invalidated every entry of namespace '{}'",
        target.namespace()
    );
    Ok(())
}

/// `rtc get KEY [--tag TAG]...`: the value as JSON ([`Outcome::Done`]), or a miss
/// ([`Outcome::Miss`]); an error when Redis could not answer or the namespace is empty.
pub fn get(target: &Target, entry: &EntryArgs) -> Result<Outcome, CliError> {
    let cache = reachable_cache(target)?;
    match cache.get_bytes(&entry.key, &entry.tags) {
        Err(_) if cache.stats().errors > 0 => return Err(not_taken("the read")),
        Err(_) => {
            refuse_empty_namespace(target, &cache)?;
            println!("miss: {}", describe(target, entry));
            return Ok(Outcome::Miss);
        }
        Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(value) => println!(
                "{}",
                serde_json::to_string_pretty(&value).expect("a JSON value prints")
            ),
            Err(error) => println!(
                "not JSON: {} holds {} bytes that do not parse as JSON ({error}); was it written \
                 with a custom serializer?",
                describe(target, entry),
                bytes.len()
            ),
        },
    }
    Ok(Outcome::Done)
}

/// `rtc delete KEY [--tag TAG]...`.
pub fn delete(target: &Target, entry: &EntryArgs) -> Result<(), CliError> {
    let cache = reachable_cache(target)?;
    // Before the delete: it leaves a tombstone even where there was no entry.
    refuse_empty_namespace(target, &cache)?;
    if cache.delete(&entry.key, &entry.tags) {
        println!("deleted {}", describe(target, entry));
    } else if cache.stats().errors > 0 {
        return Err(not_taken("the delete"));
    } else {
        println!("nothing to delete: no {}", describe(target, entry));
    }
    Ok(())
}

/// The cache, once every server behind it has answered [`TaggedCache::ping`]: the library
/// fails open (an unreachable server is a miss), so the tool asks first.
fn reachable_cache(target: &Target) -> Result<TaggedCache, CliError> {
    let cache = target.cache()?;
    cache
        .ping()
        .map_err(|error| CliError::from_ping(&target.servers(), &error))?;
    Ok(cache)
}

/// An error when no server holds any key of the namespace: a miss or a delete there most often
/// means a mistyped `--namespace`. A `SCAN` that stops at the first key found.
fn refuse_empty_namespace(target: &Target, cache: &TaggedCache) -> Result<(), CliError> {
    let pattern = cache.key_pattern();
    for node in target.nodes()? {
        if Census::any_key(&node, &mut node.connect()?, &pattern)? {
            return Ok(());
        }
    }
    Err(CliError::EmptyNamespace {
        namespace: target.namespace().to_owned(),
    })
}

fn describe(target: &Target, entry: &EntryArgs) -> String {
    format!(
        "entry '{}' with tags [{}] in namespace '{}'",
        entry.key,
        entry.tags.join(", "),
        target.namespace()
    )
}

fn not_taken(what: &str) -> CliError {
    CliError::Refusal(format!(
        "{what} did not happen: Redis refused it or failed while it ran (under maxmemory with \
         noeviction a full server refuses writes; `rtc check` shows what this user may do)"
    ))
}
