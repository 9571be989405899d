//! Table rows: the value the codec tests and benches cache, about 100 bytes of JSON per row.

use serde::{Deserialize, Serialize};

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// A customer number.
    pub id: u64,
    /// `customer-00042`.
    pub name: String,
    /// A multiple of 1.25, exact in binary so that every codec reads it back equal.
    pub score: f64,
    /// Two rows out of three.
    pub active: bool,
    /// A region and a tier.
    pub labels: Vec<String>,
}

/// `count` rows: one is ~100 bytes of JSON, 100 are ~10 KB.
pub fn rows(count: u64) -> Vec<Row> {
    (0..count)
        .map(|i| Row {
            id: 1_000_000 + i * 7919,
            name: format!("customer-{i:05}"),
            score: i as f64 * 1.25,
            active: i % 3 != 0,
            labels: vec!["eu-west".into(), format!("tier-{}", i % 4)],
        })
        .collect()
}
