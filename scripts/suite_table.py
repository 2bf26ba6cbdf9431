#!/usr/bin/env python3
"""Markdown tables of a runtime-suite JSON file (boundbench_micro --suite
registry --benchmark_out=FILE --benchmark_out_format=json).

  scripts/suite_table.py results/micro/baseline-mnist.json [more.json ...] > results/micro/baseline.md

Per model: the baselines (forward+backward pass and the k-1 margin gradients,
ms per batch) at every batch size, then per method and norm, at the largest
batch that ran: milliseconds per sample, the cost in forward+backward passes
of that batch (ratio_to_fwd_bwd), over the passes its gradient evaluations
need (ratio_to_gradients), gradient evaluations per sample, and its quality
(attacks: success rate and median distortion; bounds: median bound).
Benchmarks skipped by --max-seconds are counted, not shown."""
import json
import re
import sys

NAME = re.compile(r"^(attack|bound|exact)/([^/]+)/([^/]+)/([^/]+)/batch:(\d+)")
BASE = re.compile(r"^baseline/([^/]+)/([^/]+)/batch:(\d+)")


def ms(b):
    """real_time in milliseconds, whatever the benchmark's time_unit."""
    return b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]


def fmt(v, spec=".3g"):
    return "-" if v is None else format(v, spec)


def main(paths):
    if not paths:
        sys.exit(__doc__)
    benchmarks, contexts = [], []
    for path in paths:
        try:
            doc = json.load(open(path))
        except (OSError, ValueError) as e:
            sys.exit(f"suite_table.py: {path}: {e}")
        if not isinstance(doc.get("benchmarks"), list):
            sys.exit(f"suite_table.py: {path}: no \"benchmarks\" array")
        benchmarks += doc["benchmarks"]
        contexts.append((path, doc.get("context", {})))
    models = []
    base = {}
    runs = {}
    skipped = 0
    for b in benchmarks:
        m = BASE.match(b["name"])
        if m and not b.get("error_occurred"):
            what, model, batch = m.group(1), m.group(2), int(m.group(3))
            if model not in models:
                models.append(model)
            base.setdefault(model, {}).setdefault(batch, {})[what] = b
            continue
        m = NAME.match(b["name"])
        if not m:
            continue
        if b.get("error_occurred"):
            skipped += 1
            continue
        kind, method, model, norm, batch = m.groups()
        key = (model, method, norm)
        if key not in runs or int(batch) > runs[key][0]:
            runs[key] = (int(batch), kind, b)
    out = []
    for path, c in contexts:
        out.append(f"`{path}`: {c.get('host_name', '?')}, {c.get('num_cpus', '?')} CPUs, device "
                   f"{c.get('device', '?')}, {c.get('threads', '?')} threads, LibTorch {c.get('libtorch', '?')}, "
                   f"row kernels {c.get('row_kernels', '-')}, batches {c.get('batches', '?')}, "
                   f"--max-seconds {c.get('max_seconds', '?')}, {c.get('date', '?')}.")
    out.append("")
    out.append(f"{skipped} benchmarks skipped by --max-seconds (their smaller batches predicted more).")
    out.append("")
    for model in models:
        out.append(f"### {model}")
        out.append("")
        batches = sorted(base.get(model, {}))
        out.append("| batch | fwd+bwd (ms) | k-1 margin gradients (ms) | their ratio to fwd+bwd |")
        out.append("|---|---|---|---|")
        for n in batches:
            fb = base[model][n].get("fwd_bwd")
            kg = base[model][n].get("k_gradients")
            out.append(f"| {n} | {fmt(fb and ms(fb))} | {fmt(kg and ms(kg))} | "
                       f"{fmt(kg and kg.get('ratio_to_fwd_bwd'))} |")
        out.append("")
        out.append("| method | norm | batch | ms / sample | / fwd+bwd | / its gradients' passes | gradients / sample | quality |")
        out.append("|---|---|---|---|---|---|---|---|")
        for (m, method, norm), (n, kind, b) in sorted(runs.items(), key=lambda kv: (kv[1][1] != "attack", kv[0][1], kv[0][2])):
            if m != model:
                continue
            per_sample = ms(b) / n
            if kind == "attack":
                quality = f"success {fmt(b.get('success_rate'), '.0%')}, median {fmt(b.get('median_distortion'), '.4g')}"
            elif kind == "bound":
                quality = f"median bound {fmt(b.get('median_bound'), '.4g')}"
            else:
                quality = f"proven {fmt(b.get('proven_rate'), '.0%')}, median {fmt(b.get('median_exact'), '.4g')}"
            out.append(f"| {method} | {norm} | {n} | {fmt(per_sample)} | {fmt(b.get('ratio_to_fwd_bwd'))} | "
                       f"{fmt(b.get('ratio_to_gradients'))} | {fmt(b.get('gradients_per_sample'), '.4g')} | {quality} |")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
