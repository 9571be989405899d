#!/usr/bin/env bash
# Counts what one Redis hit costs the client, for a decorated hit (`#[rtc::cached]`, one tag),
# for the raw redis-rs `GET` of the same bytes and for the tagless peer's hit (the `cached`
# crate's Redis macros), async (64 tasks, one thread) and blocking; for a blocking low-level
# `get` of an entry with 1 tag and with 20 (what a tag adds); and for a `set` whose tags the
# near cache tracks (one plain `SET`) beside a raw `SET`. Per call: allocations (the bench's
# counting allocator), instructions and instruction-cache misses (callgrind and its simulation
# of the machine's first-level caches) and the calling thread's on-CPU time, user and
# kernel (/proc/thread-self/schedstat, in the native run, with the server on the same CPU as in
# scripts/bench.sh's default placement). Counts do not move with the machine's load as times
# do, so a change of a few per cent shows here when the timed rows cannot tell it from noise;
# the on-CPU time moves less than wall time, and includes what callgrind cannot show (SHA-NI,
# and what the caches' misses cost). A blocking call's on-CPU time is mostly the kernel's loopback TCP path.
#
#   scripts/hit_counts.sh          # 12,800 calls per mode
#   scripts/hit_counts.sh 64000
#
# Instructions need valgrind (apt-get install valgrind); without it only allocations are
# counted. valgrind hides SHA-NI from the program, so SHA-256 runs sha2's portable code there:
# about 3,500 instructions per 64-byte block, three blocks per decorated hit, where the CPU's own
# instructions take a small fraction of that (BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."

calls="${1:-12800}"
binary="$(cargo bench -p rtc-tests --bench hit_counts --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "hit_counts" and message.get("executable"):
        print(message["executable"])
')"
if [ -z "$binary" ]; then
  echo "hit_counts: the bench did not build; run: cargo bench -p rtc-tests --bench hit_counts --no-run" >&2
  exit 1
fi

have_valgrind=0
command -v valgrind >/dev/null 2>&1 && have_valgrind=1
[ "$have_valgrind" -eq 1 ] || echo "hit_counts: valgrind not found: allocations only" >&2

pin=()
if command -v taskset >/dev/null 2>&1; then
  pin=(taskset -c "$(($(nproc) - 1))")
fi

echo "| mode | instructions per call | L1i misses per call | allocations per call | bytes allocated per call | on-CPU ns per call |"
echo "|---|---:|---:|---:|---:|---:|"
for mode in rtc-async raw-async cached-async rtc-sync raw-sync cached-sync get-1-tag get-20-tags set-known-tags raw-set; do
  counted="$(${pin[@]+"${pin[@]}"} "$binary" "$mode" "$calls")"
  allocations="$(sed -n 's/^allocations per call \([0-9.]*\),.*/\1/p' <<<"$counted")"
  bytes="$(sed -n 's/.*bytes allocated per call \([0-9]*\)$/\1/p' <<<"$counted")"
  on_cpu="$(sed -n 's/^on-CPU time per call \([0-9]*\) ns$/\1/p' <<<"$counted")"
  instructions="n/a"
  instruction_misses="n/a"
  if [ "$have_valgrind" -eq 1 ]; then
    out="$(mktemp)"
    # With the cache simulation, the events are: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
    collected="$(valgrind --tool=callgrind --cache-sim=yes --toggle-collect='hit_counts::measured' \
      --callgrind-out-file="$out" "$binary" "$mode" "$calls" 2>&1 >/dev/null |
      sed -n 's/.*Collected : \([0-9 ]*\).*/\1/p')"
    rm -f "$out"
    read -r executed _ _ missed _ <<<"$collected"
    instructions="$((executed / calls))"
    instruction_misses="$((missed / calls))"
  fi
  echo "| $mode | $instructions | $instruction_misses | $allocations | $bytes | ${on_cpu:-n/a} |"
  sed -n 's/^decorated call.s future: \(.*\)/  (the decorated call'"'"'s future: \1)/p' <<<"$counted" >&2
done
