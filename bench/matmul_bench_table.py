#!/usr/bin/env python3
"""Turns matmul_bench's JSON output into the markdown table of docs/benchmarks.md.

    build-cpu/matmul_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
        --benchmark_out=matmul.json --benchmark_out_format=json
    python3 bench/matmul_bench_table.py matmul.json

Uses medians when repetitions were run. Standard library only.
"""
import json
import re
import sys


def main(path):
    data = json.load(open(path))
    rows = {}
    bandwidth = None
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b["run_name"] if "run_name" in b else b["name"]
        gbs = b["GB/s"] / 1e9 if b["GB/s"] > 1e6 else b["GB/s"]
        ms = b["real_time"] * {"ms": 1, "us": 1e-3, "ns": 1e-6, "s": 1e3}[b["time_unit"]]
        if name.startswith("BM_MemoryReadBandwidth"):
            bandwidth = gbs
            continue
        m = re.match(r"BM_Matmul(\w+)/M:(\d+)/N:(\d+)/K:(\d+)", name)
        kind, M, N, K = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        rows.setdefault((N, K, M), {})[kind] = (ms, gbs)
    print(f"Measured streaming read bandwidth: **{bandwidth:.1f} GB/s**\n")
    print("| N×K | M | W4A16 ms | BF16 ms | F32 ms | W4A16 GB/s | BF16 GB/s | F32 GB/s | W4A16 / BF16 speed-up "
          "| W4A16 / F32 speed-up | W4A16 fraction of bandwidth |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (N, K, M), r in sorted(rows.items(), key=lambda kv: (kv[0][0] * kv[0][1], kv[0][0], kv[0][2])):
        w4, bf, f32 = r["W4A16"], r["BF16"], r["F32"]
        print(f"| {N}×{K} | {M} | {w4[0]:.2f} | {bf[0]:.2f} | {f32[0]:.2f} | {w4[1]:.1f} | {bf[1]:.1f} | "
              f"{f32[1]:.1f} | {bf[0] / w4[0]:.2f}x | {f32[0] / w4[0]:.2f}x | {w4[1] / bandwidth:.0%} |")


if __name__ == "__main__":
    main(sys.argv[1])
