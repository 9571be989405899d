//! What the `rtc` binary's tests share: running it, and reading what it printed.
// Each test binary uses a part of these.
#![allow(dead_code)]

use std::process::Output;

use assert_cmd::Command;
use rtc::TaggedCache;

/// `rtc --url <server> --namespace <namespace> <args>`, with no `REDIS_URL` or `RTC_NAMESPACE`
/// inherited from the environment.
pub fn rtc(url: &str, namespace: &str, args: &[&str]) -> Output {
    bare_rtc()
        .args(["--url", url, "--namespace", namespace])
        .args(args)
        .output()
        .expect("the rtc binary runs")
}

pub fn bare_rtc() -> Command {
    let mut command = Command::cargo_bin("rtc").expect("the rtc binary is built");
    command.env_remove("REDIS_URL").env_remove("RTC_NAMESPACE");
    command
}

pub fn cache(url: &str, namespace: &str) -> TaggedCache {
    TaggedCache::builder()
        .url(url)
        .namespace(namespace)
        .build()
        .expect("valid settings")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

#[track_caller]
pub fn assert_contains(text: String, part: &str) {
    assert!(text.contains(part), "{part:?} not in:\n{text}");
}

#[track_caller]
pub fn assert_starts_with(text: String, start: &str) {
    assert!(
        text.starts_with(start),
        "does not start with {start:?}:\n{text}"
    );
}
