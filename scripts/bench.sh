#!/usr/bin/env bash
# Runs every benchmark of BENCHMARKS.md in one go against one redis-server of its own (a free
# loopback port, no persistence), then prints the table: medians, spread and ratios to the
# baselines measured in the same run on the same server.
#
#   scripts/bench.sh              # everything (about 4 minutes on 2 cores, plus the build)
#   scripts/bench.sh --no-python  # without the Python peer
#   scripts/bench.sh --no-pin     # let the scheduler place the server and the benches
#
# By default the server, the Rust benches and the Python peer all run on one CPU (taskset): on a
# small VM a loopback round trip between two CPUs costs a cross-CPU wake-up whose price varies
# several-fold from one minute to the next, which made the ratios depend on where the scheduler
# happened to put the processes. See BENCHMARKS.md.
#
# Figures land in target/bench-results/ (table.md, http.md, memory.json, python.json,
# commandstats.txt, criterion/).
set -euo pipefail
cd "$(dirname "$0")/.."

run_python=1
pin_cpu=1
for argument in "$@"; do
  case "$argument" in
    --no-python) run_python=0 ;;
    --no-pin) pin_cpu=0 ;;
    *) echo "usage: scripts/bench.sh [--no-python] [--no-pin]" >&2; exit 2 ;;
  esac
done

for tool in redis-server redis-cli cargo; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "bench: $tool not found (redis-server and redis-cli come with 'apt-get install redis-server')" >&2
    exit 1
  fi
done

results="$PWD/target/bench-results"
rm -rf "$results"
mkdir -p "$results"

# A port nobody answers on; redis-server itself refuses a taken one, and the wait below says so.
free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "bench: no free loopback port found" >&2
  return 1
}

pin=()
placement="unpinned"
if [ "$pin_cpu" -eq 1 ]; then
  if command -v taskset >/dev/null 2>&1; then
    cpu=$(($(nproc) - 1))
    pin=(taskset -c "$cpu")
    placement="server and benches pinned to CPU $cpu"
  else
    placement="unpinned (taskset not found)"
  fi
fi

port="$(free_port)"
${pin[@]+"${pin[@]}"} redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$results" --logfile "$results/redis.log" &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
  if ! kill -0 "$redis_pid" 2>/dev/null; then
    echo "bench: redis-server did not start; its log:" >&2
    cat "$results/redis.log" >&2
    exit 1
  fi
  sleep 0.1
done

export RTC_BENCH_REDIS_URL="redis://127.0.0.1:$port/0"
export RTC_BENCH_RESULTS="$results"
export CRITERION_HOME="$results/criterion"
echo "==> $(redis-server --version | cut -d' ' -f1-3) on 127.0.0.1:$port; $(nproc) cores, $placement; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$placement" >"$results/placement.txt"

echo "==> building the benches"
cargo bench -p rtc-tests --no-run --quiet
cargo bench -p rtc-http --bench http --no-run --quiet

echo "==> Rust benches (criterion)"
${pin[@]+"${pin[@]}"} cargo bench -p rtc-tests --quiet --bench low_level --bench decorated --bench memory_per_entry --bench near

# What the server spent per command during the Rust benches, to tell client time from server time.
redis-cli -p "$port" INFO commandstats >"$results/commandstats.txt"

# Whole HTTP responses: axum and rtc-http's layer beside the same handler uncached and a
# hand-written moka cache, 32 connections, in one process (client and server share the CPU).
echo "==> HTTP responses (rtc-http)"
${pin[@]+"${pin[@]}"} cargo bench -p rtc-http --quiet --bench http

echo "==> Python peer (redis-tagged-cache)"
if [ "$run_python" -eq 0 ]; then
  echo "python peer: skipped: --no-python"
  echo '{"skipped": "--no-python"}' >"$results/python.json"
elif ! command -v python3 >/dev/null 2>&1; then
  echo "python peer: skipped: python3 not found"
  echo '{"skipped": "python3 not found"}' >"$results/python.json"
else
  venv="$PWD/target/bench-venv"
  if [ ! -x "$venv/bin/python" ] && ! python3 -m venv "$venv" >"$results/venv.log" 2>&1; then
    echo "python peer: skipped: python3 -m venv failed (Debian: apt-get install python3-venv); see $results/venv.log"
    echo '{"skipped": "python3 -m venv failed"}' >"$results/python.json"
  elif ! "$venv/bin/pip" install --quiet --disable-pip-version-check redis-tagged-cache >>"$results/venv.log" 2>&1; then
    echo "python peer: skipped: pip install redis-tagged-cache failed; see $results/venv.log"
    echo '{"skipped": "pip install redis-tagged-cache failed"}' >"$results/python.json"
  else
    ${pin[@]+"${pin[@]}"} "$venv/bin/python" scripts/bench_python.py "$RTC_BENCH_REDIS_URL" "$results/python.json"
  fi
fi

echo "==> table"
echo
cargo bench -p rtc-tests --quiet --bench report
