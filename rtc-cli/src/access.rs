//! Whether a Redis user may run every command rtc sends, on the namespace's keys. One list of
//! commands, two ways to ask: `ACL DRYRUN` when the user may run it, otherwise each command for
//! real on two probe keys of the namespace (removed at the end).

use redis::Script;

/// What rtc's scripts are replaced by in the probes: a script that touches nothing.
const PROBE_SCRIPT: &str = "return 1";

/// A command rtc sends, with arguments naming keys of the namespace.
pub struct Needed {
    /// The command as `ACL` names it (`SCRIPT LOAD`).
    pub name: &'static str,
    /// What rtc uses it for.
    pub purpose: &'static str,
    /// Only `rtc stats` needs it; the library does not.
    pub stats_only: bool,
    words: Vec<String>,
}

/// The verdict for one command.
pub struct Verdict {
    /// The command.
    pub name: &'static str,
    /// Its purpose.
    pub purpose: &'static str,
    /// Only `rtc stats` needs it.
    pub stats_only: bool,
    /// `None` when allowed, the server's reason when not.
    pub denied: Option<String>,
}

/// How the verdicts were reached.
pub enum Method {
    /// `ACL DRYRUN` for this user.
    DryRun(String),
    /// The commands were run on probe keys.
    Probe,
}

/// Every command rtc sends, on probe keys inside the namespace whose id is `namespace_id`
/// (the `<ns>` of `rtc:<kind>:<ns>:…`), in an order that works when run for real.
pub fn needed(namespace_id: &str) -> Vec<Needed> {
    let value = format!("rtc:c:{namespace_id}:check-value");
    let list = format!("rtc:c:{namespace_id}:check-list");
    let sha = Script::new(PROBE_SCRIPT).get_hash().to_owned();
    let command = |name, purpose, stats_only, words: &[&str]| Needed {
        name,
        purpose,
        stats_only,
        words: words.iter().map(|word| (*word).to_owned()).collect(),
    };
    vec![
        command(
            "SET",
            "store entries, create and bump tag versions",
            false,
            &["SET", &value, "probe", "NX", "GET", "PX", "60000"],
        ),
        command("GET", "read one key", false, &["GET", &value]),
        command(
            "MGET",
            "read an entry with its tags' versions",
            false,
            &["MGET", &value, &value],
        ),
        command(
            "PTTL",
            "read a lock's lifetime, and date an entry with a stale window",
            false,
            &["PTTL", &value],
        ),
        command(
            "LPUSH",
            "wake lock waiters",
            false,
            &["LPUSH", &list, "probe"],
        ),
        command(
            "PEXPIRE",
            "bound a wake list's lifetime",
            false,
            &["PEXPIRE", &list, "60000"],
        ),
        command(
            "BLPOP",
            "wait for a lock holder",
            false,
            &["BLPOP", &list, "0.01"],
        ),
        command(
            "SCRIPT LOAD",
            "load rtc's scripts",
            false,
            &["SCRIPT", "LOAD", PROBE_SCRIPT],
        ),
        command(
            "EVALSHA",
            "run rtc's scripts (stamped writes, lock release)",
            false,
            &["EVALSHA", &sha, "1", &value],
        ),
        command(
            "SCAN",
            "count the namespace's keys",
            true,
            &[
                "SCAN",
                "0",
                "MATCH",
                &format!("rtc:?:{namespace_id}:*"),
                "COUNT",
                "1",
            ],
        ),
        command(
            "MEMORY USAGE",
            "measure the namespace's memory",
            true,
            &["MEMORY", "USAGE", &value],
        ),
        command(
            "DEL",
            "release locks (inside rtc's scripts)",
            false,
            &["DEL", &value, &list],
        ),
    ]
}

/// Asks `ACL DRYRUN` for each command; `None` when this user may not run `ACL WHOAMI` or
/// `ACL DRYRUN` (then [`probe`] must do).
pub fn dry_run(
    connection: &mut redis::Connection,
    needed: &[Needed],
) -> Option<(Method, Vec<Verdict>)> {
    let user: String = redis::cmd("ACL").arg("WHOAMI").query(connection).ok()?;
    let mut verdicts = Vec::with_capacity(needed.len());
    for command in needed {
        let reply: String = redis::cmd("ACL")
            .arg("DRYRUN")
            .arg(&user)
            .arg(&command.words)
            .query(connection)
            .ok()?;
        verdicts.push(command.verdict((reply != "OK").then_some(reply)));
    }
    Some((Method::DryRun(user), verdicts))
}

/// Runs each command for real on the probe keys: only a `NOPERM` refusal counts as denied
/// (any other error, such as a cluster redirection, comes after the permission check).
pub fn probe(connection: &mut redis::Connection, needed: &[Needed]) -> (Method, Vec<Verdict>) {
    let verdicts = needed
        .iter()
        .map(|command| {
            let mut words = command.words.iter();
            let mut cmd = redis::cmd(words.next().expect("a command has a name"));
            cmd.arg(words.collect::<Vec<_>>());
            let denied = match cmd.query::<redis::Value>(connection) {
                Err(error) if error.code() == Some("NOPERM") => Some(error.to_string()),
                _ => None,
            };
            command.verdict(denied)
        })
        .collect();
    (Method::Probe, verdicts)
}

impl Needed {
    fn verdict(&self, denied: Option<String>) -> Verdict {
        Verdict {
            name: self.name,
            purpose: self.purpose,
            stats_only: self.stats_only,
            denied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_key_lies_inside_the_namespace_pattern() {
        for command in needed("0123456789ab") {
            let keys = command.words.iter().filter(|word| word.starts_with("rtc:"));
            for key in keys {
                assert!(
                    key.starts_with("rtc:") && key[5..].starts_with(":0123456789ab:"),
                    "{key}"
                );
            }
        }
    }
}
