//! The table of `scripts/bench.sh`: reads what the other benches and the Python peer recorded in
//! this run and prints, per workload, each implementation's median and spread, its ratio to the
//! workload's baseline and the target. Not a measurement: run it after the others.
//!
//! Medians and quartiles are over criterion's samples (each sample's mean time per call), so
//! every row, Rust or Python, is summarised the same way.

#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod figures;
mod timings;
mod workloads;

use std::fmt::Write as _;

use figures::Inputs;

fn main() {
    let inputs = Inputs::load();
    let mut out = String::new();
    machine(&mut out);
    timings::table(&mut out, &inputs);
    server_time(&mut out);
    memory(&mut out, &inputs);
    near_delay(&mut out, &inputs);
    print!("{out}");
    let path = support::results_dir().join("table.md");
    std::fs::write(&path, &out).expect("table.md can be written");
    println!("\n(also written to {})", path.display());
}

fn machine(out: &mut String) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let redis = redis_version().unwrap_or_else(|| "unknown".to_owned());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let placement = std::fs::read_to_string(support::results_dir().join("placement.txt"))
        .map_or_else(
            |_| "placement not recorded".to_owned(),
            |text| text.trim().to_owned(),
        );
    let _ = writeln!(
        out,
        "Machine: {cores} cores, {cpu}; Redis {redis} on loopback, {placement}; load average \
         {load} when the table was made.\n"
    );
}

fn redis_version() -> Option<String> {
    let url = std::env::var("RTC_BENCH_REDIS_URL").ok()?;
    let mut connection = redis::Client::open(url).ok()?.get_connection().ok()?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut connection)
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(|version| version.trim().to_owned())
}

/// Mean server time per command over the Rust benches (`INFO commandstats`, saved by the script):
/// what of a call's latency the server spends, the rest being the round trip and the client.
fn server_time(out: &mut String) {
    let Ok(stats) = std::fs::read_to_string(support::results_dir().join("commandstats.txt")) else {
        return;
    };
    let _ = writeln!(
        out,
        "\nServer time per command during the Rust benches (`INFO commandstats`, `usec_per_call`): {}.",
        ["get", "mget", "set", "evalsha"]
            .iter()
            .filter_map(|command| {
                let line = stats
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:")))?;
                let per_call = line
                    .split(',')
                    .find_map(|field| field.strip_prefix("usec_per_call="))?;
                Some(format!("`{}` {per_call} µs", command.to_uppercase()))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// How long another process's invalidation took to stop a near hit here.
fn near_delay(out: &mut String, inputs: &Inputs) {
    let Some(delay) = &inputs.near_delay else {
        let _ = writeln!(out, "\nNear cache invalidation delay: not run.");
        return;
    };
    let _ = writeln!(
        out,
        "\nNear cache invalidation delay (another process's `invalidate` returned → this process's \
         near hit stops):\n\n| process | rounds | p50 | p99 | max |\n|---|---:|---:|---:|---:|"
    );
    for (label, key) in [
        ("quiet", "quiet"),
        (
            "one thread reading near, one writing the namespace",
            "loaded",
        ),
    ] {
        let micros = |field: &str| delay[key][field].as_f64().unwrap_or(f64::NAN) / 1000.0;
        let _ = writeln!(
            out,
            "| {label} | {} | {:.0} µs | {:.0} µs | {:.0} µs |",
            delay[key]["rounds"],
            micros("p50_ns"),
            micros("p99_ns"),
            micros("max_ns"),
        );
    }
}

fn memory(out: &mut String, inputs: &Inputs) {
    let Some(memory) = &inputs.memory else {
        let _ = writeln!(out, "\nRedis memory per entry: not run.");
        return;
    };
    let _ = writeln!(
        out,
        "\nRedis memory per entry (mean over {} entries of the same ~{:.0}-byte JSON value):\n",
        memory["entries"],
        memory["rtc"]["serialized_len"].as_f64().unwrap_or(0.0)
    );
    let _ = writeln!(
        out,
        "| entry | `MEMORY USAGE` | stored string | serialized value | overhead beyond the value | `used_memory` growth per entry |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for (label, key) in [
        ("raw `SET` of the JSON, same lifetime", "raw_set"),
        ("rtc entry, 2 tags", "rtc"),
        ("`cached` `RedisCache` entry (MessagePack)", "cached_redis"),
    ] {
        let figure = |field: &str| memory[key][field].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "| {label} | {:.0} B | {:.0} B | {:.0} B | {:.0} B | {:.0} B |",
            figure("memory_usage"),
            figure("stored_len"),
            figure("serialized_len"),
            figure("memory_usage") - figure("serialized_len"),
            figure("used_memory_per_entry"),
        );
    }
    if let Ok(python) = &inputs.python {
        let figure = |field: &str| python["memory"][field].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "| Python rtc entry, 2 tags (pickle) | {:.0} B | {:.0} B | {:.0} B | {:.0} B | |",
            figure("memory_usage"),
            figure("stored_len"),
            figure("stored_len"),
            figure("memory_usage") - figure("stored_len"),
        );
    }
    let _ = writeln!(
        out,
        "\nOne rtc tag key (shared by every entry carrying the tag): {} B.",
        memory["rtc_tag_key_memory_usage"]
    );
}
