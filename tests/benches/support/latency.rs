//! Per-call latencies beside criterion's figures. Criterion's samples are each the mean of many
//! calls, so their spread hides the tail; here every call of a hit row is timed on its own (the
//! clock reads, about 20-40 ns, included) and the row's p50 and p99 are recorded for the table.

use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;

/// Calls timed one by one per row, after criterion has warmed it up.
const CALLS: u64 = 20_000;

/// Where a row's percentiles are written: `<results>/latency/<group>/<bench>.json`.
pub fn path(group: &str, bench: &str) -> PathBuf {
    super::results_dir()
        .join("latency")
        .join(group)
        .join(format!("{bench}.json"))
}

/// Benches `call` as `bench` in `group` (criterion's `group_name`), then, if criterion's filter
/// let it run, times [`CALLS`] calls one by one for the row's percentiles.
pub fn sync_row<R>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    bench: &str,
    mut call: impl FnMut() -> R,
) {
    let mut ran = false;
    group.bench_function(bench, |bencher| {
        ran = true;
        bencher.iter(|| std::hint::black_box(call()));
    });
    if ran {
        let nanos = (0..CALLS)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(call());
                started.elapsed().as_nanos() as f64
            })
            .collect();
        record(group_name, bench, nanos);
    }
}

/// As [`sync_row`], for calls made by [`super::CONCURRENCY`] tasks at once: criterion measures
/// the throughput ([`super::concurrently`]); each call's latency includes its wait for the
/// connection and the runtime, as a caller of a busy service sees it.
pub fn concurrent_row<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    bench: &str,
    runtime: &tokio::runtime::Runtime,
    call: F,
) where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut ran = false;
    group.bench_function(bench, |bencher| {
        ran = true;
        bencher.iter_custom(|iters| super::concurrently(runtime, iters, call.clone()));
    });
    if ran {
        record(group_name, bench, concurrent_latencies(runtime, call));
    }
}

fn concurrent_latencies<F, Fut>(runtime: &tokio::runtime::Runtime, call: F) -> Vec<f64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..super::CONCURRENCY {
            let call = call.clone();
            tasks.spawn(async move {
                let mut nanos = Vec::new();
                for _ in 0..CALLS / super::CONCURRENCY {
                    let started = Instant::now();
                    call().await;
                    nanos.push(started.elapsed().as_nanos() as f64);
                }
                nanos
            });
        }
        let mut all = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            all.extend(joined.expect("a bench task panicked"));
        }
        all
    })
}

fn record(group: &str, bench: &str, mut nanos: Vec<f64>) {
    nanos.sort_by(f64::total_cmp);
    let at = |q: f64| nanos[((nanos.len() - 1) as f64 * q).round() as usize];
    let figures = serde_json::json!({
        "calls": nanos.len(),
        "p50_ns": at(0.5),
        "p99_ns": at(0.99),
    });
    let path = path(group, bench);
    std::fs::create_dir_all(path.parent().expect("a latency file has a directory"))
        .expect("the latency directory can be created");
    std::fs::write(&path, figures.to_string()).expect("a latency file can be written");
}
