//! The table of `scripts/bench.sh`: reads what the other benches and the Python peer recorded in
//! this run and prints, per workload, each implementation's median and spread, its ratio to the
//! workload's baseline and the target. Not a measurement: run it after the others.
//!
//! Medians and quartiles are over criterion's samples (each sample's mean time per call), so
//! every row, Rust or Python, is summarised the same way.

#[allow(dead_code)]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where a row's figures come from.
#[derive(Clone, Copy)]
enum Source {
    /// `<criterion home>/<group>/<bench>/new/sample.json`.
    Criterion(&'static str, &'static str),
    /// A workload of `python.json`.
    Python(&'static str),
}

/// What the issue asks of a row.
#[derive(Clone, Copy)]
enum Target {
    /// Median latency at most this many times the baseline's.
    LatencyAtMost(f64),
    /// As `LatencyAtMost`, and faster than another row of the same workload.
    LatencyAtMostAndFasterThan(f64, &'static str),
    /// Throughput at least this many times the baseline's.
    ThroughputAtLeast(f64),
}

struct Row {
    label: &'static str,
    source: Source,
    target: Option<Target>,
}

struct Workload {
    title: &'static str,
    /// Rows measure calls in flight at once: the ratio is one of throughputs.
    throughput: bool,
    /// The first row is the baseline.
    rows: Vec<Row>,
}

const fn row(label: &'static str, source: Source) -> Row {
    Row {
        label,
        source,
        target: None,
    }
}

const fn target(label: &'static str, source: Source, target: Target) -> Row {
    Row {
        label,
        source,
        target: Some(target),
    }
}

fn workloads() -> Vec<Workload> {
    use Source::{Criterion as C, Python as P};
    vec![
        Workload {
            title: "sync `get` hit, 2 tags, ~100-byte value, one thread",
            throughput: false,
            rows: vec![
                row("raw redis-rs `GET` (baseline)", C("get_hit", "raw_get")),
                target(
                    "rtc `get`",
                    C("get_hit", "rtc_get"),
                    Target::LatencyAtMost(1.2),
                ),
                row("Python redis-py `GET`", P("get_hit/python_raw_get")),
                row("Python rtc `get`", P("get_hit/python_rtc_get")),
            ],
        },
        Workload {
            title: "decorated sync fn hit, 1 dynamic tag, one thread",
            throughput: false,
            rows: vec![
                row(
                    "raw redis-rs `GET` (baseline)",
                    C("decorated_sync", "raw_get"),
                ),
                target(
                    "rtc `#[cached]`",
                    C("decorated_sync", "rtc_cached"),
                    Target::LatencyAtMostAndFasterThan(1.25, "cached_redis"),
                ),
                row(
                    "`cached` `#[concurrent_cached]` + `RedisCache`",
                    C("decorated_sync", "cached_redis"),
                ),
                row(
                    "Python rtc `@cache.decorator`",
                    P("decorated_sync/python_rtc_cached"),
                ),
            ],
        },
        Workload {
            title: "async decorated hit, 64 concurrent tasks, one multiplexed connection",
            throughput: true,
            rows: vec![
                row(
                    "raw redis-rs async `GET`, `ConnectionManager` (baseline)",
                    C("async_64_tasks", "raw_get"),
                ),
                target(
                    "rtc `#[cached]` async fn",
                    C("async_64_tasks", "rtc_cached"),
                    Target::ThroughputAtLeast(0.8),
                ),
                row(
                    "`cached` `#[concurrent_cached]` + `AsyncRedisCache`",
                    C("async_64_tasks", "cached_redis"),
                ),
            ],
        },
        Workload {
            title: "`set` with 2 existing tags, one thread",
            throughput: false,
            rows: vec![
                row("raw redis-rs `SET` (baseline)", C("set", "raw_set")),
                target("rtc `set`", C("set", "rtc_set"), Target::LatencyAtMost(1.2)),
                row("Python rtc `set`", P("set/python_rtc_set")),
            ],
        },
        Workload {
            title: "`invalidate` one tag, one thread",
            throughput: false,
            rows: vec![
                row(
                    "tag carried by 1 entry (baseline)",
                    C("invalidate", "tag_of_1_entry"),
                ),
                target(
                    "tag carried by 100,000 entries",
                    C("invalidate", "tag_of_100k_entries"),
                    Target::LatencyAtMost(1.2),
                ),
            ],
        },
        Workload {
            title: "decorated hit, in-memory backend, one thread",
            throughput: false,
            rows: vec![
                row(
                    "`cached` `#[cached]` (baseline)",
                    C("in_memory", "cached_memory"),
                ),
                row(
                    "rtc `#[cached]`, `in_local_memory`",
                    C("in_memory", "rtc_cached"),
                ),
                row(
                    "Python rtc `@cache.decorator`, `in_local_memory`",
                    P("in_memory/python_rtc_cached"),
                ),
            ],
        },
    ]
}

/// A row's median and quartiles, in nanoseconds per call.
#[derive(Clone, Copy)]
struct Figure {
    median: f64,
    p25: f64,
    p75: f64,
}

impl Figure {
    fn from_per_call(mut per_call: Vec<f64>) -> Option<Self> {
        if per_call.is_empty() {
            return None;
        }
        per_call.sort_by(f64::total_cmp);
        Some(Self {
            median: quantile(&per_call, 0.5),
            p25: quantile(&per_call, 0.25),
            p75: quantile(&per_call, 0.75),
        })
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

struct Inputs {
    criterion_home: PathBuf,
    python: Result<Value, String>,
    memory: Option<Value>,
}

impl Inputs {
    fn load() -> Self {
        let results = support::results_dir();
        let criterion_home = std::env::var_os("CRITERION_HOME").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"),
            PathBuf::from,
        );
        let python = match read_json(&results.join("python.json")) {
            Some(report) => match report.get("skipped").and_then(Value::as_str) {
                Some(reason) => Err(format!("skipped: {reason}")),
                None => Ok(report),
            },
            None => Err("not run".to_owned()),
        };
        Self {
            criterion_home,
            python,
            memory: read_json(&results.join("memory.json")),
        }
    }

    fn figure(&self, source: Source) -> Result<Figure, String> {
        match source {
            Source::Criterion(group, bench) => {
                let path = self
                    .criterion_home
                    .join(group)
                    .join(bench)
                    .join("new/sample.json");
                let sample = read_json(&path).ok_or_else(|| "not run".to_owned())?;
                let column = |name: &str| -> Vec<f64> {
                    sample[name]
                        .as_array()
                        .map(|values| values.iter().filter_map(Value::as_f64).collect())
                        .unwrap_or_default()
                };
                let per_call = column("times")
                    .iter()
                    .zip(column("iters"))
                    .map(|(time, iters)| time / iters)
                    .collect();
                Figure::from_per_call(per_call).ok_or_else(|| "no samples".to_owned())
            }
            Source::Python(name) => {
                let python = self.python.as_ref().map_err(Clone::clone)?;
                let per_call = python["results"][name]["per_call_ns"]
                    .as_array()
                    .map(|values| values.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default();
                Figure::from_per_call(per_call).ok_or_else(|| "not run".to_owned())
            }
        }
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn main() {
    let inputs = Inputs::load();
    let mut out = String::new();
    machine(&mut out);
    timings(&mut out, &inputs);
    server_time(&mut out);
    memory(&mut out, &inputs);
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
    let _ = writeln!(
        out,
        "Machine: {cores} cores, {cpu}; Redis {redis} on loopback; load average {load} when \
         the table was made.\n"
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

fn timings(out: &mut String, inputs: &Inputs) {
    let _ = writeln!(
        out,
        "| workload | implementation | median | spread (p25–p75) | vs baseline | target | verdict |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---|---|");
    for workload in workloads() {
        let baseline = inputs.figure(workload.rows[0].source).ok();
        for (index, row) in workload.rows.iter().enumerate() {
            let title = if index == 0 { workload.title } else { "" };
            let figure = match inputs.figure(row.source) {
                Ok(figure) => figure,
                Err(reason) => {
                    let _ = writeln!(out, "| {title} | {} | {reason} | | | | |", row.label);
                    continue;
                }
            };
            let ratio = baseline.map(|baseline| {
                if workload.throughput {
                    baseline.median / figure.median
                } else {
                    figure.median / baseline.median
                }
            });
            let median = if workload.throughput {
                format!(
                    "{} ({:.1}k calls/s)",
                    duration(figure.median),
                    1e6 / figure.median
                )
            } else {
                duration(figure.median)
            };
            let ratio_text = match (index, ratio) {
                (0, _) => "1.00×".to_owned(),
                (_, Some(ratio)) if workload.throughput => format!("{ratio:.2}× throughput"),
                (_, Some(ratio)) => format!("{ratio:.2}×"),
                (_, None) => "no baseline".to_owned(),
            };
            let (target_text, verdict) = match (row.target, ratio, baseline) {
                (Some(target), Some(ratio), Some(baseline)) => {
                    judge(target, ratio, figure, baseline, &workload, inputs)
                }
                (Some(_), _, _) => ("".to_owned(), "no baseline".to_owned()),
                (None, _, _) => (String::new(), String::new()),
            };
            let _ = writeln!(
                out,
                "| {title} | {} | {median} | {}–{} | {ratio_text} | {target_text} | {verdict} |",
                row.label,
                duration(figure.p25),
                duration(figure.p75),
            );
        }
    }
}

/// The target's text and whether it is met; a miss says by how much.
fn judge(
    target: Target,
    ratio: f64,
    figure: Figure,
    baseline: Figure,
    workload: &Workload,
    inputs: &Inputs,
) -> (String, String) {
    match target {
        Target::LatencyAtMost(limit) => (
            format!("≤ {limit}× baseline"),
            latency(ratio, limit, figure, baseline),
        ),
        Target::LatencyAtMostAndFasterThan(limit, peer_bench) => {
            let peer = workload.rows.iter().find(
                |row| matches!(row.source, Source::Criterion(_, bench) if bench == peer_bench),
            );
            let peer_figure = peer.and_then(|peer| inputs.figure(peer.source).ok());
            let against_peer = match peer_figure {
                Some(peer) if figure.median < peer.median => format!(
                    "faster than `cached`: met ({:.2}× its latency)",
                    figure.median / peer.median
                ),
                Some(peer) => format!(
                    "faster than `cached`: missed ({:.2}× its latency)",
                    figure.median / peer.median
                ),
                None => "faster than `cached`: peer not run".to_owned(),
            };
            (
                format!("≤ {limit}× baseline; faster than `cached`"),
                format!(
                    "{}; {against_peer}",
                    latency(ratio, limit, figure, baseline)
                ),
            )
        }
        Target::ThroughputAtLeast(limit) => {
            let verdict = if ratio >= limit {
                format!("met ({ratio:.2}× ≥ {limit}×)")
            } else {
                format!(
                    "missed by {:.0}% ({ratio:.2}× < {limit}×)",
                    (1.0 - ratio / limit) * 100.0
                )
            };
            (format!("≥ {limit}× baseline throughput"), verdict)
        }
    }
}

fn latency(ratio: f64, limit: f64, figure: Figure, baseline: Figure) -> String {
    if ratio <= limit {
        format!("met ({ratio:.2}× ≤ {limit}×)")
    } else {
        format!(
            "missed by {} per call ({ratio:.2}× > {limit}×)",
            duration(figure.median - limit * baseline.median)
        )
    }
}

fn duration(nanos: f64) -> String {
    if nanos >= 1e6 {
        format!("{:.2} ms", nanos / 1e6)
    } else if nanos >= 1e3 {
        format!("{:.1} µs", nanos / 1e3)
    } else {
        format!("{nanos:.0} ns")
    }
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
