#!/usr/bin/env python3
"""Groups the self samples of a perf recording of the server core by crate (the crate named in
each symbol; kernel symbols as "kernel"), in µs per delivery: bench/perf-crates.sh calls it.

Usage: perf-crates.py PERF_DATA DELIVERIES_PER_S [GROUP ...]  (GROUPs: also list their top symbols)
"""
import collections
import re
import subprocess
import sys

# Symbol substring -> group, first match wins (socketioxide_redis before socketioxide).
CRATES = [
    ("engineioxide", "engineioxide"), ("socketioxide_redis", "socketioxide-redis"),
    ("socketioxide", "socketioxide"), ("tungstenite", "tungstenite"), ("tokio", "tokio"),
    ("sio_redis_adapter", "sio-redis-adapter"), ("sio_gateway", "sio-gateway"),
    ("sio_wire", "sio-wire"), ("sio_bench", "sio-bench (floor)"), ("fred", "fred"),
    ("redis::", "redis"), ("hyper", "hyper"), ("serde", "serde"), ("bytes", "bytes"),
    ("futures", "futures"), ("prometheus", "prometheus"),
]
SERVERS = {"tokio-rt-worker", "sio-gateway", "sio-bench", "socketioxide-pe"}


def main() -> None:
    data, rate = sys.argv[1], float(sys.argv[2])
    report = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--sort", "comm,dso,sym", "-g", "none",
         "-q", "--percent-limit", "0"],
        capture_output=True, text=True, check=True).stdout
    groups, tops = collections.Counter(), collections.defaultdict(collections.Counter)
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if not m or m[2] not in SERVERS:
            continue
        pct, dso, kind, sym = float(m[1]), m[3], m[4], m[5].strip()
        if kind == "k":
            group = "kernel"
        else:
            group = next((g for sub, g in CRATES if sub in sym), None)
            if group is None:
                libc = dso.startswith("libc") or "malloc" in sym or "free" in sym or sym.startswith("__mem")
                group = "libc (malloc, memmove)" if libc else "other"
        groups[group] += pct
        tops[group][sym[:110]] += pct
    # pct of one core's time -> µs per delivery
    per = lambda pct: pct / 100 * 1e6 / rate
    total = sum(groups.values())
    print(f"server processes: {total:.2f} % of the core, {per(total):.2f} µs per delivery")
    for g, v in groups.most_common():
        print(f"  {g:24s} {per(v):6.2f} µs  ({100 * v / total:5.1f} %)")
    for g in sys.argv[3:]:
        print(f"-- {g}")
        for sym, v in tops[g].most_common(12):
            print(f"   {per(v):6.3f} µs  {sym}")


if __name__ == "__main__":
    main()
