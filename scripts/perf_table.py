#!/usr/bin/env python3
"""Markdown table of the micro-benchmarks' cost ratios.

usage: scripts/perf_table.py results/micro.json

Reads Google Benchmark's JSON output of build/boundbench_micro and prints, per
model, the time of one forward+backward pass of the batch, the cost of one PGD
step as a ratio to it, and the share of the batch that PGD had made
adversarial by the end of its run (rows it then stopped moving). For DeepFool
(`deepfool_run/...`): a whole run (all classes, no refinement) as a ratio to
the time of the gradient evaluations it made, computed batched (k - 1 class
gradients of the batch in one backward, scaled by the run's gradient count),
and its mean iterations per sample. Older files with `deepfool_iteration/...`
(one iteration over its k gradients) still print, under that old header; the
two ratios are not comparable. A second table gives the fused step kernel
alone (CPU), for each vector-unit variant measured, as a ratio to the same
forward+backward pass and in microseconds.
"""
import json
import sys


def main(path):
    with open(path) as f:
        report = json.load(f)
    rows = {}
    kernels = {}
    deepfool_kinds = set()
    for bench in report["benchmarks"]:
        kind, model, *rest = bench["run_name"].split("/")
        row = rows.setdefault(model, {})
        if kind == "fwd_bwd":
            row["fwd_bwd_ms"] = bench["real_time"]
        elif kind == "pgd_step":
            row[f"pgd_{rest[0]}"] = bench["ratio_to_fwd_bwd"]
            row[f"adv_{rest[0]}"] = bench.get("adversarial", float("nan"))
        elif kind == "step_kernel":
            norm, isa = rest[0], rest[1]
            kernels.setdefault(model, {})[(isa, norm)] = (bench["ratio_to_fwd_bwd"], bench["real_time"])
        elif kind == "deepfool_run":
            deepfool_kinds.add(kind)
            row[f"df_{rest[0]}"] = bench["ratio_to_gradients"]
            row[f"dfit_{rest[0]}"] = bench["iterations"]
            row[f"dfk_{rest[0]}"] = bench["k_gradients_to_fwd_bwd"]
        elif kind == "deepfool_iteration":  # files written before deepfool_run
            deepfool_kinds.add(kind)
            row[f"df_{rest[0]}"] = bench["ratio_to_k_gradients"]
            row[f"dfk_{rest[0]}"] = bench["k_gradients_to_fwd_bwd"]
    context = report["context"]
    row_kernels = context.get("row_kernels")
    print(f"Batch {context.get('batch', '?')}, device {context.get('device', '?')}, "
          f"{context.get('threads', '?')} threads, LibTorch {context.get('libtorch', '?')}"
          + (f", CPU row kernels {row_kernels}" if row_kernels else "") + ".\n")
    if len(deepfool_kinds) > 1:
        sys.exit(f"{path}: both deepfool_run and deepfool_iteration results; their ratios are not comparable")
    old_deepfool = deepfool_kinds == {"deepfool_iteration"}
    if old_deepfool:
        deepfool_header = "| DeepFool iteration / its k gradients: L1, L2, Linf "
    else:
        deepfool_header = ("| DeepFool run / its gradient evaluations batched: L1, L2, Linf "
                           "| DeepFool iterations, mean per sample: L1, L2, Linf ")
    print("| model | fwd+bwd (ms) | PGD step / fwd+bwd: L1, L2, Linf "
          "| PGD rows adversarial at the end " + deepfool_header + "| k gradients / fwd+bwd |")
    print("|---" * (6 if old_deepfool else 7) + "|")
    for model, row in rows.items():
        pgd = ", ".join(f"{row.get('pgd_' + n, float('nan')):.2f}" for n in ("L1", "L2", "Linf"))
        adv = ", ".join(f"{100 * row.get('adv_' + n, float('nan')):.0f}%" for n in ("L1", "L2", "Linf"))
        df = ", ".join(f"{row.get('df_' + n, float('nan')):.2f}" for n in ("L1", "L2", "Linf"))
        if not old_deepfool:
            df += " | " + ", ".join(f"{row.get('dfit_' + n, float('nan')):.1f}" for n in ("L1", "L2", "Linf"))
        print(f"| {model} | {row.get('fwd_bwd_ms', float('nan')):.1f} | {pgd} | {adv} | {df} "
              f"| {row.get('dfk_L2', float('nan')):.1f} |")
    if kernels:
        print("\nThe fused PGD step kernel alone, per vector unit: ratio to fwd+bwd (time in µs).\n")
        print("| model | vector unit | L1 | L2 | Linf |")
        print("|---|---|---|---|---|")
        for model, cells in kernels.items():
            for isa in dict.fromkeys(isa for isa, _ in cells):
                values = []
                for norm in ("L1", "L2", "Linf"):
                    ratio, ms = cells.get((isa, norm), (float("nan"), float("nan")))
                    values.append(f"{ratio:.3f} ({1000 * ms:.0f})")
                print(f"| {model} | {isa} | " + " | ".join(values) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    main(sys.argv[1])
