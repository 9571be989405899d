//! The timing table: medians, spread, ratios to the baseline, and each target's verdict.

use std::fmt::Write as _;

use crate::figures::{Figure, Inputs};
use crate::workloads::{workloads, Source, Target, Workload};

pub fn table(out: &mut String, inputs: &Inputs) {
    let _ = writeln!(
        out,
        "| workload | implementation | median | spread (p25–p75) | per call p50 / p99 | vs baseline | target | verdict |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---|---|");
    for workload in workloads() {
        let baseline = inputs.figure(workload.rows[0].source).ok();
        for (index, row) in workload.rows.iter().enumerate() {
            let title = if index == 0 { workload.title } else { "" };
            let figure = match inputs.figure(row.source) {
                Ok(figure) => figure,
                Err(reason) => {
                    let _ = writeln!(out, "| {title} | {} | {reason} | | | | | |", row.label);
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
            let tail = inputs.tail(row.source).map_or_else(String::new, |tail| {
                format!("{} / {}", duration(tail.p50), duration(tail.p99))
            });
            let _ = writeln!(
                out,
                "| {title} | {} | {median} | {}–{} | {tail} | {ratio_text} | {target_text} | {verdict} |",
                row.label,
                duration(figure.p25),
                duration(figure.p75),
            );
        }
    }
}

/// The target's text and whether it is met; a miss says by how much.
pub fn judge(
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
            let against_peer = against_peer(figure, peer_bench, workload, inputs, "faster than");
            (
                format!("≤ {limit}× baseline; faster than `cached`"),
                format!(
                    "{}; {against_peer}",
                    latency(ratio, limit, figure, baseline)
                ),
            )
        }
        Target::ThroughputAtLeast(limit) => (
            format!("≥ {limit}× baseline throughput"),
            throughput(ratio, limit),
        ),
        Target::ThroughputAtLeastAndAheadOf(limit, peer_bench) => {
            let verdict = throughput(ratio, limit);
            let against_peer = against_peer(figure, peer_bench, workload, inputs, "ahead of");
            (
                format!("≥ {limit}× baseline throughput; ahead of `cached`"),
                format!("{verdict}; {against_peer}"),
            )
        }
    }
}

/// The verdict on a throughput `ratio` against its target `limit`.
fn throughput(ratio: f64, limit: f64) -> String {
    if ratio >= limit {
        format!("met ({ratio:.2}× ≥ {limit}×)")
    } else {
        format!(
            "missed by {:.0}% ({ratio:.2}× < {limit}×)",
            (1.0 - ratio / limit) * 100.0
        )
    }
}

/// Whether `figure` beats the peer row `peer_bench` (less time per call, which for throughput
/// rows is more calls per second).
fn against_peer(
    figure: Figure,
    peer_bench: &str,
    workload: &Workload,
    inputs: &Inputs,
    relation: &str,
) -> String {
    let peer = workload
        .rows
        .iter()
        .find(|row| matches!(row.source, Source::Criterion(_, bench) if bench == peer_bench));
    match peer.and_then(|peer| inputs.figure(peer.source).ok()) {
        Some(peer) => {
            let verdict = if figure.median < peer.median {
                "met"
            } else {
                "missed"
            };
            let (ours, theirs) = if workload.throughput {
                (1.0 / figure.median, 1.0 / peer.median)
            } else {
                (figure.median, peer.median)
            };
            let measure = if workload.throughput {
                "throughput"
            } else {
                "latency"
            };
            format!(
                "{relation} `cached`: {verdict} ({:.2}× its {measure})",
                ours / theirs
            )
        }
        None => format!("{relation} `cached`: peer not run"),
    }
}

pub fn latency(ratio: f64, limit: f64, figure: Figure, baseline: Figure) -> String {
    if ratio <= limit {
        format!("met ({ratio:.2}× ≤ {limit}×)")
    } else {
        format!(
            "missed by {} per call ({ratio:.2}× > {limit}×)",
            duration(figure.median - limit * baseline.median)
        )
    }
}

pub fn duration(nanos: f64) -> String {
    if nanos >= 1e6 {
        format!("{:.2} ms", nanos / 1e6)
    } else if nanos >= 1e3 {
        format!("{:.1} µs", nanos / 1e3)
    } else {
        format!("{nanos:.0} ns")
    }
}
