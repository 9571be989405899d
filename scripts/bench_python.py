#!/usr/bin/env python3
"""The Python peer of the Rust benches: redis-tagged-cache running the same workloads against
the same Redis server, timed the way the table reads criterion's samples (many samples of many
calls; per-call time of each sample). Run by scripts/bench.sh inside a throwaway venv.

Usage: bench_python.py REDIS_URL OUTPUT_JSON
"""

import json
import platform
import sys
import time
from importlib.metadata import version
from urllib.parse import urlparse

import redis
from rtc import RedisTaggedCache

SAMPLES = 40
SAMPLE_SECONDS = 0.1
WARM_UP_SECONDS = 0.5
TAGS = ["tag1", "tag2"]
# rtc's own Python memory figures go to a database of their own, like the Rust memory bench.
MEMORY_DB = 10
MEMORY_ENTRIES = 2_000


def user(id_):
    """The same value as the Rust benches' `support::user`."""
    return {
        "id": id_,
        "name": f"User {id_:06}",
        "email": f"user{id_:06}@example.com",
        "roles": ["reader", "editor"],
        "active": True,
    }


def per_call_samples(call):
    """Per-call nanoseconds of SAMPLES samples, each of as many calls as fit in SAMPLE_SECONDS."""
    deadline = time.perf_counter() + WARM_UP_SECONDS
    warm_up_calls = 0
    while time.perf_counter() < deadline:
        call()
        warm_up_calls += 1
    calls = max(1, int(warm_up_calls * SAMPLE_SECONDS / WARM_UP_SECONDS))
    samples = []
    for _ in range(SAMPLES):
        started = time.perf_counter_ns()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter_ns() - started) / calls)
    return samples


def main():
    url, output = sys.argv[1], sys.argv[2]
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port
    raw = redis.Redis(host=host, port=port)
    cache = RedisTaggedCache(namespace="bench-python", host=host, port=port)
    memory_cache = RedisTaggedCache(namespace="bench-python", in_local_memory=True)

    @cache.decorator(tags=lambda id_: [f"user:{id_}"])
    def decorated_user(id_):
        return user(id_)

    @memory_cache.decorator(tags=lambda id_: [f"user:{id_}"])
    def in_memory_user(id_):
        return user(id_)

    raw_value = json.dumps(user(1), separators=(",", ":")).encode()
    raw.set("bench:python:raw:user:1", raw_value)
    cache.set("user:1", user(1), tags=TAGS)
    assert cache.get("user:1", tags=TAGS) == user(1)
    cache.set("user:2", user(2), tags=TAGS)
    decorated_user(7)
    in_memory_user(7)

    def expect_hit(value):
        assert value == user(value["id"]), "a hit returns the cached value"

    workloads = {
        "get_hit/python_raw_get": lambda: raw.get("bench:python:raw:user:1"),
        "get_hit/python_rtc_get": lambda: expect_hit(cache.get("user:1", tags=TAGS)),
        "set/python_rtc_set": lambda: cache.set("user:2", user(2), tags=TAGS),
        "decorated_sync/python_rtc_cached": lambda: expect_hit(decorated_user(7)),
        "in_memory/python_rtc_cached": lambda: expect_hit(in_memory_user(7)),
    }
    results = {}
    for name, call in workloads.items():
        results[name] = {"per_call_ns": per_call_samples(call)}
        median = sorted(results[name]["per_call_ns"])[SAMPLES // 2]
        print(f"python: {name:<34} median {median / 1000:8.1f} µs", flush=True)

    report = {
        "python": platform.python_version(),
        "package": f"redis-tagged-cache {version('redis-tagged-cache')}",
        "results": results,
        "memory": memory_per_entry(host, port),
    }
    with open(output, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2)


def memory_per_entry(host, port):
    """MEMORY USAGE of Python rtc's entries (pickled values), in a database of their own."""
    raw = redis.Redis(host=host, port=port, db=MEMORY_DB)
    cache = RedisTaggedCache(namespace="bench-python-memory", host=host, port=port, db=MEMORY_DB)
    before = set(raw.scan_iter(match="rtc:*:s:*", count=1000))
    for id_ in range(MEMORY_ENTRIES):
        cache.set(f"user:{id_}", user(id_), tags=TAGS)
    added = [key for key in raw.scan_iter(match="rtc:*:s:*", count=1000) if key not in before]
    assert len(added) == MEMORY_ENTRIES, "one storage key per entry"
    usage = sum(raw.memory_usage(key, samples=0) for key in added) / len(added)
    stored = sum(raw.strlen(key) for key in added) / len(added)
    print(
        f"python: memory: MEMORY USAGE {usage:.1f} B, stored (pickled) value {stored:.1f} B, "
        f"overhead beyond the value {usage - stored:.1f} B",
        flush=True,
    )
    return {"memory_usage": usage, "stored_len": stored, "entries": MEMORY_ENTRIES}


if __name__ == "__main__":
    main()
