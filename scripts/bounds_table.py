#!/usr/bin/env python3
"""Markdown table of bound tightness from `boundbench bound --attack ... --out` files.

usage: scripts/bounds_table.py results/bounds/*.jsonl
Per (model, norm, bound): samples, median / p10 / p90 of bound / smallest
attack distortion (samples an attack broke), estimated bounds above it,
median bound, seconds and gradient evaluations per sample.
"""
import json
import statistics
import sys


def quantile(values, q):
    s = sorted(values)
    if not s:
        return float("nan")
    position = q * (len(s) - 1)
    low = int(position)
    high = min(low + 1, len(s) - 1)
    return s[low] + (s[high] - s[low]) * (position - low)


def main(paths):
    groups = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                key = (row["model"], row["norm"], row["bound"])
                groups.setdefault(key, []).append(row)
    print("| model | norm | bound | kind | samples | tightness median (p10, p90) | above attack | median bound | s / sample | gradients / sample |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    order = {"crown-radius": 0}
    for (model, norm, bound), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], not kv[1][0]["certified"], -statistics.median([r["tightness"] for r in kv[1] if r.get("tightness") is not None] or [0]))):
        t = [r["tightness"] for r in rows if r.get("tightness") is not None]
        above = sum(1 for x in t if x > 1)
        kind = "certified" if rows[0]["certified"] else "estimated"
        values = [r["value"] for r in rows if r["value"] is not None]
        print(
            f"| {model} | {norm} | `{bound}` | {kind} | {len(rows)} | "
            f"{statistics.median(t):.3f} ({quantile(t, 0.1):.3f}, {quantile(t, 0.9):.3f}) | "
            f"{above} | {statistics.median(values):.4g} | "
            f"{statistics.median(r['seconds'] for r in rows):.3f} | "
            f"{statistics.median(r['gradients'] for r in rows):.0f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
