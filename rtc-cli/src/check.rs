//! `rtc check`: can this server, and this user, serve rtc?

use std::time::Duration;

use rtc::{PingError, TaggedCache};

use crate::access::{self, Method};
use crate::error::CliError;
use crate::server::ServerInfo;
use crate::target::Target;

/// How many `PING`s the round-trip time is the median of.
const PINGS: usize = 5;

/// Checks every server of the target; fails on the first one that is too old, and at the end
/// when a command rtc needs is denied anywhere.
pub fn run(target: &Target) -> Result<(), CliError> {
    let cache = target.cache()?;
    let round_trip =
        round_trip(&cache).map_err(|error| CliError::from_ping(&target.servers(), &error))?;
    println!(
        "round trip {:.2} ms (median of {PINGS} PINGs {}, as TaggedCache::ping sends them)",
        round_trip.as_secs_f64() * 1000.0,
        if target.is_cluster() {
            "to every primary"
        } else {
            "to the server"
        }
    );
    let pattern = cache.key_pattern();
    let namespace_id = pattern
        .strip_prefix("rtc:?:")
        .and_then(|rest| rest.strip_suffix(":*"))
        .expect("rtc key patterns read rtc:?:<ns>:*");
    let needed = access::needed(namespace_id);
    let mut denied = Vec::new();
    for node in target.nodes()? {
        let mut connection = node.connect()?;
        let server = ServerInfo::read(&node, &mut connection)?;
        if let Some(reason) = server.too_old() {
            return Err(CliError::Refusal(reason));
        }
        println!("{}: {}", node.address, server.product());
        let (method, verdicts) = match access::dry_run(&mut connection, &needed) {
            Some(found) => found,
            None => access::probe(&mut connection, &needed),
        };
        match method {
            Method::DryRun(user) => {
                println!("  user '{user}', checked with ACL DRYRUN on {pattern}")
            }
            Method::Probe => println!(
                "  this user may not run ACL DRYRUN: commands tried on probe keys of {pattern}"
            ),
        }
        for verdict in verdicts {
            let status = match (&verdict.denied, verdict.if_denied) {
                (None, _) => "ok".to_owned(),
                (Some(reason), Some(cost)) => format!("DENIED, {cost}: {reason}"),
                (Some(reason), None) => {
                    denied.push(format!("{} on {}", verdict.name, node.address));
                    format!("DENIED: {reason}")
                }
            };
            println!("  {:<15} {:<50} {status}", verdict.name, verdict.purpose);
        }
        if let Some(warning) = server.eviction_warning() {
            println!("warning: {warning}");
        }
    }
    if !denied.is_empty() {
        return Err(CliError::Refusal(format!(
            "this user may not run every command rtc needs on namespace '{}': {} denied",
            target.namespace(),
            denied.join(", ")
        )));
    }
    println!(
        "ok: rtc can use namespace '{}' on every server",
        target.namespace()
    );
    Ok(())
}

/// The median of [`PINGS`] pings through the library (the first also opens the connection).
fn round_trip(cache: &TaggedCache) -> Result<Duration, PingError> {
    let mut times = (0..PINGS)
        .map(|_| cache.ping())
        .collect::<Result<Vec<_>, _>>()?;
    times.sort();
    Ok(times[PINGS / 2])
}
