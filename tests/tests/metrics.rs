//! With the `metrics` feature, hits, misses, their latencies, lock waits and errors reach the
//! application's recorder, labelled by namespace and function.

use std::sync::OnceLock;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use rtc::TaggedCache;
use rtc_tests::free_port;
use rtc_tests::statics::install;

static CACHE: OnceLock<TaggedCache> = OnceLock::new();

#[rtc::cached(cache = CACHE.get().unwrap())]
fn square(x: u64) -> u64 {
    x * x
}

/// `(kind, name, labels as "k=v" sorted)` with its value, for every metric recorded.
fn recorded(recorder: &DebuggingRecorder) -> Vec<(MetricKind, String, Vec<String>, DebugValue)> {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            (kind, key.name().to_owned(), labels, value)
        })
        .collect()
}

fn counter(
    metrics: &[(MetricKind, String, Vec<String>, DebugValue)],
    name: &str,
    labels: &[&str],
) -> u64 {
    metrics
        .iter()
        .filter(|(kind, metric, have, _)| {
            *kind == MetricKind::Counter
                && metric == name
                && labels.iter().all(|l| have.iter().any(|h| h == l))
        })
        .map(|(_, _, _, value)| match value {
            DebugValue::Counter(count) => *count,
            _ => 0,
        })
        .sum()
}

#[test]
fn calls_and_errors_reach_the_recorder() {
    install(
        &CACHE,
        TaggedCache::builder()
            .namespace("metered")
            .in_memory()
            .build()
            .unwrap(),
    );
    let recorder = DebuggingRecorder::new();
    let unreachable = TaggedCache::builder()
        .namespace("down")
        .url(format!("redis://127.0.0.1:{}/0", free_port()))
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        assert_eq!(square(3), 9);
        assert_eq!(square(3), 9);
        assert_eq!(square(4), 16);
        let _ = CACHE.get().unwrap().get::<u64>("k", ["t"]);
        let _ = unreachable.get::<u64>("k", ["t"]);
    });
    let metrics = recorded(&recorder);
    let square = ["namespace=metered", "function=square"];
    assert_eq!(counter(&metrics, "rtc_hits_total", &square), 1);
    assert_eq!(counter(&metrics, "rtc_misses_total", &square), 2);
    assert_eq!(
        counter(
            &metrics,
            "rtc_misses_total",
            &["namespace=metered", "function=get"]
        ),
        1
    );
    assert_eq!(
        counter(
            &metrics,
            "rtc_errors_total",
            &["namespace=down", "operation=read", "kind=unreachable"]
        ),
        1
    );
    let histograms: Vec<_> = metrics
        .iter()
        .filter(|(kind, name, labels, _)| {
            *kind == MetricKind::Histogram
                && name == "rtc_miss_seconds"
                && labels.contains(&"function=square".to_owned())
        })
        .collect();
    assert_eq!(histograms.len(), 1, "{metrics:#?}");
    match &histograms[0].3 {
        DebugValue::Histogram(samples) => assert_eq!(samples.len(), 2),
        other => panic!("not a histogram: {other:?}"),
    }
}
