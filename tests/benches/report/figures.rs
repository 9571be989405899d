//! The figures this run recorded: criterion's samples, the Python peer's, as medians and quartiles.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support;
use crate::workloads::Source;

/// A row's median and quartiles, in nanoseconds per call.
#[derive(Clone, Copy)]
pub struct Figure {
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
}

impl Figure {
    pub fn from_per_call(mut per_call: Vec<f64>) -> Option<Self> {
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

pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

pub struct Inputs {
    pub criterion_home: PathBuf,
    pub python: Result<Value, String>,
    pub memory: Option<Value>,
    /// The near cache's invalidation delay (`near_delay.json`), when the near bench ran.
    pub near_delay: Option<Value>,
}

impl Inputs {
    pub fn load() -> Self {
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
            near_delay: read_json(&results.join("near_delay.json")),
        }
    }

    pub fn figure(&self, source: Source) -> Result<Figure, String> {
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

/// A row's per-call p50 and p99 in nanoseconds (`support::latency`), for the rows that have them.
#[derive(Clone, Copy)]
pub struct Tail {
    pub p50: f64,
    pub p99: f64,
}

impl Inputs {
    pub fn tail(&self, source: Source) -> Option<Tail> {
        let Source::Criterion(group, bench) = source else {
            return None;
        };
        let figures = read_json(&support::latency::path(group, bench))?;
        Some(Tail {
            p50: figures["p50_ns"].as_f64()?,
            p99: figures["p99_ns"].as_f64()?,
        })
    }
}

pub fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}
