//! `rtc stats`: what the namespace holds and how its servers are set up.

use std::io::Write;

use crate::census::Census;
use crate::error::CliError;
use crate::server::ServerInfo;
use crate::target::Target;

/// The whole report, as `--json` prints it.
#[derive(serde::Serialize)]
struct Report<'a> {
    namespace: &'a str,
    key_pattern: &'a str,
    servers: Vec<ServerInfo>,
    #[serde(flatten)]
    census: Census,
    memory_bytes_estimate: u64,
    warnings: Vec<String>,
}

/// Scans every server of the target; fails when the namespace holds no key at all.
pub fn run(target: &Target, json: bool, memory_samples: u64) -> Result<(), CliError> {
    let cache = target.cache()?;
    let pattern = cache.key_pattern();
    let mut census = Census::default();
    let mut servers = Vec::new();
    let mut progress = |keys: u64| {
        eprintln!(
            "rtc: scanned {keys} keys of namespace '{}'…",
            target.namespace()
        );
    };
    for node in target.nodes()? {
        let mut connection = node.connect()?;
        servers.push(ServerInfo::read(&node, &mut connection)?);
        census.scan(
            &node,
            &mut connection,
            &pattern,
            memory_samples,
            &mut progress,
        )?;
    }
    if census.keys == 0 {
        return Err(CliError::EmptyNamespace {
            namespace: target.namespace().to_owned(),
        });
    }
    let warnings = servers
        .iter()
        .filter_map(|server| server.too_old().or_else(|| server.eviction_warning()))
        .collect();
    let report = Report {
        namespace: target.namespace(),
        key_pattern: &pattern,
        servers,
        memory_bytes_estimate: census.memory_estimate(),
        census,
        warnings,
    };
    let mut out = std::io::stdout().lock();
    let written = if json {
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write_text(&mut out, &report)
    };
    written.map_err(|error| CliError::Refusal(format!("cannot write the report: {error}")))
}

fn write_text(out: &mut impl Write, report: &Report<'_>) -> std::io::Result<()> {
    let census = &report.census;
    writeln!(
        out,
        "namespace '{}' ({})",
        report.namespace, report.key_pattern
    )?;
    for server in &report.servers {
        let memory = match (server.maxmemory, &server.maxmemory_policy) {
            (Some(0), _) => "no maxmemory".to_owned(),
            (Some(bytes), Some(policy)) => {
                format!("maxmemory {}, policy {policy}", human_bytes(bytes))
            }
            _ => "memory settings unknown (this user may not run INFO)".to_owned(),
        };
        writeln!(
            out,
            "  server      {}: {}, {memory}",
            server.address,
            server.product()
        )?;
    }
    writeln!(out, "  keys        {}", census.keys)?;
    writeln!(out, "  entries     {}", census.entries)?;
    writeln!(out, "  tombstones  {}", census.tombstones)?;
    writeln!(out, "  tags        {}", census.tags)?;
    writeln!(
        out,
        "  locks       {} (wake lists {})",
        census.locks, census.wake_lists
    )?;
    if census.unknown_entries + census.other > 0 {
        writeln!(
            out,
            "  other       {} (entries of an unknown format {})",
            census.other, census.unknown_entries
        )?;
    }
    writeln!(
        out,
        "  memory      ~{} (estimated from {} of {} keys)",
        human_bytes(report.memory_bytes_estimate),
        census.memory_samples,
        census.keys
    )?;
    for warning in &report.warnings {
        writeln!(out, "warning: {warning}")?;
    }
    Ok(())
}

/// `1536` → `1.5 KiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_picks_the_largest_unit_below_the_value() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 << 30), "3.0 GiB");
    }
}
