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
    /// What a denial costs, when rtc works without it (`None`: rtc needs it).
    pub if_denied: Option<&'static str>,
    words: Vec<String>,
}

/// What a denied `rtc stats`-only command costs.
const STATS_ONLY: Option<&str> = Some("rtc stats will not work");
/// What denied tracking costs.
const ONE_GET: Option<&str> = Some("every hit reads its tags (an MGET, not one GET)");

/// The verdict for one command.
pub struct Verdict {
    /// The command.
    pub name: &'static str,
    /// Its purpose.
    pub purpose: &'static str,
    /// What a denial costs, when rtc works without it.
    pub if_denied: Option<&'static str>,
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
    let command = |name, purpose, if_denied, words: &[&str]| Needed {
        name,
        purpose,
        if_denied,
        words: words.iter().map(|word| (*word).to_owned()).collect(),
    };
    vec![
        command(
            "SET",
            "store entries, create and bump tag versions",
            None,
            &["SET", &value, "probe", "NX", "GET", "PX", "60000"],
        ),
        command("GET", "read one key", None, &["GET", &value]),
        command(
            "MGET",
            "read an entry with its tags' versions",
            None,
            &["MGET", &value, &value],
        ),
        command(
            "PTTL",
            "read a lock's lifetime, and date an entry with a stale window",
            None,
            &["PTTL", &value],
        ),
        command(
            "LPUSH",
            "wake lock waiters",
            None,
            &["LPUSH", &list, "probe"],
        ),
        command(
            "PEXPIRE",
            "bound a wake list's lifetime",
            None,
            &["PEXPIRE", &list, "60000"],
        ),
        command(
            "BLPOP",
            "wait for a lock holder",
            None,
            &["BLPOP", &list, "0.01"],
        ),
        command(
            "SCRIPT LOAD",
            "load rtc's scripts",
            None,
            &["SCRIPT", "LOAD", PROBE_SCRIPT],
        ),
        command(
            "EVALSHA",
            "run rtc's scripts (stamped writes, lock release)",
            None,
            &["EVALSHA", &sha, "1", &value],
        ),
        command(
            "SCAN",
            "count the namespace's keys",
            STATS_ONLY,
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
            STATS_ONLY,
            &["MEMORY", "USAGE", &value],
        ),
        command(
            "CLIENT TRACKING",
            "learn tag versions in-band (one GET per hit)",
            ONE_GET,
            &["CLIENT", "TRACKING", "OFF"],
        ),
        command(
            "CLIENT CACHING",
            "have a read's tags tracked",
            ONE_GET,
            &["CLIENT", "CACHING", "YES"],
        ),
        command(
            "DEL",
            "release locks (inside rtc's scripts)",
            None,
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
            if_denied: self.if_denied,
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
