#!/usr/bin/env bash
# Runs the whole test suite against real Redis servers that the tests start themselves.
# Installs what is missing first: redis-server (apt-get, Debian) and the Rust components used.
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server and redis-cli (cluster tests), openssl (TLS tests make their certificates).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]} with apt-get"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "==> $(redis-server --version)"

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

echo "==> cargo test (unit, integration, UI and doc tests)"
cargo test --workspace --all-features

echo "==> cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet

echo "==> benches and examples build"
cargo build --workspace --all-features --benches --examples --quiet

# The crates a registry would publish; rtc-tests and rtc-examples are `publish = false`.
published=(-p rtc-core -p rtc-macros -p rtc -p rtc-cli)

msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
echo "==> minimum supported Rust $msrv: cargo +$msrv check of the published crates"
rustup toolchain list | grep -q "^$msrv" || rustup toolchain install "$msrv" --profile minimal
cargo "+$msrv" check --locked "${published[@]}" --all-features --quiet

# One command for all four: cargo packages them in dependency order and verifies each against the
# others through a temporary local registry, so no --no-verify is needed for the path
# dependencies between them. --allow-dirty: this checks packaging, it publishes nothing.
echo "==> cargo package (published crates, verified)"
cargo package "${published[@]}" --allow-dirty --quiet
