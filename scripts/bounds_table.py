#!/usr/bin/env python3
"""Markdown table of bound tightness from `boundbench bound --attack ... --out` files.

usage: scripts/bounds_table.py [--versus BOUND] results/bounds/*.jsonl
Per (model, norm, bound): samples, median / p10 / p90 of bound / smallest
attack distortion (samples an attack broke), estimated bounds above it,
median bound, seconds and gradient evaluations per sample (a method run
with interval.refine on is its own row). With --versus
BOUND, one more column: the median (min, max) over samples of this bound
divided by BOUND's value on the same sample (same model and norm), e.g.
--versus hein-one-layer.
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


def main(args):
    versus = None
    if len(args) >= 2 and args[0] == "--versus":
        versus, args = args[1], args[2:]
    groups = {}
    # Two row formats: the older one, a bound row per sample carrying
    # "bound" (its registry name) and its "tightness"; the harness's
    # (harness/records.h), one record per sample and method with "kind"
    # "attack" or "bound", the registry name in "method", tightness =
    # value / the smallest successful attack value of the sample.
    reference = {}
    for path in args:
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if row.get("kind") == "attack":
                    if row.get("success") and row.get("value") is not None:
                        where = (row["model"], row["norm"], row["sample"])
                        reference[where] = min(reference.get(where, float("inf")), row["value"])
                    continue
                label = row["bound"] if "bound" in row else row["method"]
                # The same method with every input coordinate refined
                # (configs/certified-mlp-refined.ini) gets its own row.
                if "interval.refine=true" in row.get("name", ""):
                    label += " interval.refine"
                key = (row["model"], row["norm"], label)
                groups.setdefault(key, []).append(row)
    for rows in groups.values():
        for row in rows:
            where = (row["model"], row["norm"], row["sample"])
            if "tightness" not in row and where in reference and row.get("value") is not None:
                row["tightness"] = row["value"] / reference[where]
    extra_head = f" / `{versus}` per sample: median (min, max) |" if versus else ""
    extra_rule = "---|" if versus else ""
    print("| model | norm | bound | kind | samples | tightness median (p10, p90) | above attack | median bound | s / sample | gradients / sample |" + extra_head)
    print("|---|---|---|---|---|---|---|---|---|---|" + extra_rule)
    for (model, norm, bound), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], not kv[1][0]["certified"], -statistics.median([r["tightness"] for r in kv[1] if r.get("tightness") is not None] or [0]))):
        t = [r["tightness"] for r in rows if r.get("tightness") is not None]
        above = sum(1 for x in t if x > 1)
        kind = "certified" if rows[0]["certified"] else "estimated"
        values = [r["value"] for r in rows if r["value"] is not None]
        extra = ""
        if versus:
            base = {r["sample"]: r["value"] for r in groups.get((model, norm, versus), []) if r["value"]}
            ratios = [r["value"] / base[r["sample"]] for r in rows if r["value"] is not None and r["sample"] in base]
            extra = (f" {statistics.median(ratios):.3f} ({min(ratios):.3f}, {max(ratios):.3f}) |"
                     if ratios else " – |")
        print(
            f"| {model} | {norm} | `{bound}` | {kind} | {len(rows)} | "
            f"{statistics.median(t):.3f} ({quantile(t, 0.1):.3f}, {quantile(t, 0.9):.3f}) | "
            f"{above} | {statistics.median(values):.4g} | "
            f"{statistics.median(r['seconds'] for r in rows):.3f} | "
            f"{statistics.median(r['gradients'] for r in rows):.0f} |" + extra
        )


if __name__ == "__main__":
    main(sys.argv[1:])
