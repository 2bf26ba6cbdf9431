#!/usr/bin/env python3
"""Figures of a BoundBench run folder, from its samples.jsonl.

usage: scripts/plot_results.py RUN_DIR [--out DIR] [--formats png,pdf]

samples.jsonl holds one JSON object per (model, norm, sample, method); the
format is in harness/records.h. The reference distortion of a sample is the
smallest distortion among its successful attacks; a bound's tightness is
bound / reference (1 is exact; above 1 the bound exceeds an attack: allowed
for an estimated bound, a soundness bug for a certified one).

Per (model, norm), into RUN_DIR (or --out), as PNG and PDF:
  tightness-MODEL-NORM  every bound against the reference distortion, log-log,
                        with the line y = x; filled markers: certified bounds,
                        hollow: estimated ones
  cdf-MODEL-NORM        the distribution of tightness per bound (log x axis)
  runtime-MODEL-NORM    median seconds per sample per method, attacks apart
And overview: the median tightness (p10 to p90) of every bound, per model and
norm. Figures are 3.5 in (one column) or 7 in (two columns) wide, text 7 pt
or more.

Exit 2 with a one-line message when samples.jsonl is missing or malformed.
Needs matplotlib (Debian: python3-matplotlib); an interpreter without it
hands over to /usr/bin/python3 when that one has it.
"""

import argparse
import json
import math
import os
import re
import sys

PROG = "plot_results.py"


def die(message):
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(2)


def hand_over_without_matplotlib():
    """An interpreter without matplotlib (a virtual environment, pyenv) runs
    the script again under /usr/bin/python3, Debian's, where it usually is."""
    import importlib.util
    if importlib.util.find_spec("matplotlib") is not None:
        return
    system = "/usr/bin/python3"
    if (os.environ.get("BOUNDBENCH_PLOT_REEXEC") != "1" and os.path.exists(system)
            and os.path.realpath(sys.executable) != os.path.realpath(system)):
        os.environ["BOUNDBENCH_PLOT_REEXEC"] = "1"
        os.execv(system, [system, os.path.abspath(__file__)] + sys.argv[1:])


def import_matplotlib():
    try:
        import matplotlib
    except ImportError:
        die("matplotlib is missing (Debian: apt-get install python3-matplotlib)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return matplotlib, plt


# ---------------------------------------------------------------------------
# Reading samples.jsonl


REQUIRED = {
    "model": str,
    "norm": str,
    "sample": int,
    "method": str,
    "kind": str,
    "success": bool,
}


def number_or_none(value, field, where):
    """A finite float, or None for null / a non-finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        die(f"{where}: '{field}' must be a number or null, got {json.dumps(value)[:40]}")
    value = float(value)
    return value if math.isfinite(value) else None


def read_samples(path):
    """The records of samples.jsonl, each a dict with the fields used here."""
    if not os.path.exists(path):
        die(f"{path}: not found (is the argument a run folder?)")
    if os.path.isdir(path):
        die(f"{path}: a folder, expected a file")
    records = []
    try:
        handle = open(path, encoding="utf-8")
    except OSError as e:
        die(f"{path}: cannot be read: {e.strerror}")
    with handle:
        try:
            text = handle.read()
        except UnicodeDecodeError:
            die(f"{path}: not UTF-8 text")
    lines = text.split("\n")
    if lines[-1]:
        # As the harness reads it: a last line without its newline is a run
        # killed while appending, and is left out.
        print(f"{PROG}: {path}:{len(lines)}: ignoring the last line (no newline: a run killed "
              "while appending)", file=sys.stderr)
    lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            die(f"{where}: not a JSON object: {e.msg} (column {e.colno})")
        if not isinstance(record, dict):
            die(f"{where}: not a JSON object")
        for field, kind in REQUIRED.items():
            if field not in record:
                die(f"{where}: missing field '{field}'")
            value = record[field]
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            if not ok:
                die(f"{where}: '{field}' must be {kind.__name__}, got {json.dumps(value)[:40]}")
        if record["kind"] not in ("attack", "bound", "exact"):
            die(f"{where}: 'kind' must be attack, bound or exact, got {json.dumps(record['kind'])[:40]}")
        if "value" not in record:
            die(f"{where}: missing field 'value'")
        certified = record.get("certified", False)
        if not isinstance(certified, bool):
            die(f"{where}: 'certified' must be true or false")
        records.append({
            "model": record["model"],
            "norm": record["norm"],
            "sample": record["sample"],
            "method": record["method"],
            "kind": record["kind"],
            "certified": certified and record["kind"] in ("bound", "exact"),
            "success": record["success"],
            "value": number_or_none(record["value"], "value", where),
            "seconds": number_or_none(record.get("seconds"), "seconds", where),
            "line": number,
        })
    if not records:
        die(f"{path}: no records")
    return records


# ---------------------------------------------------------------------------
# Figures of the records


def group(records):
    """{(model, norm): {"attacks": {method: [records]}, "bounds": {...},
    "certified": {method: bool}, "reference": {sample: distortion}}} in the
    order the records first name them."""
    groups = {}
    for r in records:
        g = groups.setdefault((r["model"], r["norm"]),
                              {"attacks": {}, "bounds": {}, "certified": {}, "reference": {}})
        # A resumed run may hold a sample twice: the last record counts.
        side = g["attacks"] if r["kind"] == "attack" else g["bounds"]
        side.setdefault(r["method"], {})[r["sample"]] = r
        # An exact minimum (exact-milp) is drawn as a bound that is certified:
        # its tightness against the best attack is at most 1.
        if r["kind"] != "attack":
            g["certified"][r["method"]] = g["certified"].get(r["method"], False) or r["certified"]
    for g in groups.values():
        for method, by_sample in g["attacks"].items():
            g["attacks"][method] = list(by_sample.values())
            for r in g["attacks"][method]:
                if r["success"] and r["value"] is not None and r["value"] > 0:
                    old = g["reference"].get(r["sample"])
                    g["reference"][r["sample"]] = r["value"] if old is None else min(old, r["value"])
        for method, by_sample in g["bounds"].items():
            g["bounds"][method] = list(by_sample.values())
    return groups


def pairs(g, method):
    """(reference, bound) of the samples of a bound with a reference and a
    finite value."""
    out = []
    for r in g["bounds"][method]:
        reference = g["reference"].get(r["sample"])
        if reference is not None and r["value"] is not None:
            out.append((reference, r["value"]))
    return out


def quantile(values, q):
    """Linear interpolation between order statistics (NumPy's default)."""
    values = sorted(values)
    position = q * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


NORM_TEX = {"L1": "1", "L2": "2", "Linf": r"\infty"}
NORM_TEXT = {"L1": "L1", "L2": "L2", "Linf": "L∞"}


def delta(norm):
    sub = NORM_TEX.get(norm)
    return rf"$\Vert\delta\Vert_{{{sub}}}$" if sub else f"‖δ‖ ({norm})"


def file_part(text):
    """A model name or TorchScript path as part of a file name."""
    text = os.path.basename(text.rstrip("/")) if "/" in text else text
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


class Style:
    """One colour and marker per method, the same in every figure."""

    COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
               "#8C564B", "#332288", "#999933", "#AA4499", "#117733", "#882255",
               "#44AA99", "#DDCC77", "#661100", "#6699CC"]
    MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*"]

    def __init__(self, methods):
        self.index = {m: i for i, m in enumerate(methods)}

    def colour(self, method):
        return self.COLOURS[self.index[method] % len(self.COLOURS)]

    def marker(self, method):
        return self.MARKERS[self.index[method] % len(self.MARKERS)]


def setup(matplotlib):
    matplotlib.rcParams.update({
        "font.size": 8,
        "axes.titlesize": 8,
        "axes.labelsize": 8,
        "xtick.labelsize": 7,
        "ytick.labelsize": 7,
        "legend.fontsize": 7,
        "legend.title_fontsize": 7,
        "axes.linewidth": 0.6,
        "lines.linewidth": 1.0,
        "grid.linewidth": 0.4,
        "grid.alpha": 0.5,
        "savefig.dpi": 200,
        "pdf.fonttype": 42,
    })


def ordered_bounds(g):
    """Certified bounds first, then estimated ones, each by median tightness
    (tightest first); bounds without any pair last."""
    def key(method):
        t = [b / a for a, b in pairs(g, method)]
        return (not g["certified"][method], -(quantile(t, 0.5) if t else -1), method)
    return sorted(g["bounds"], key=key)


def legend_handles(plt, g, style, methods, with_counts):
    """Handles and labels: a header line per group (certified, estimated)."""
    from matplotlib.lines import Line2D
    handles, labels = [], []
    for certified, title in ((True, "certified bounds"), (False, "estimated bounds")):
        group_methods = [m for m in methods if g["certified"][m] == certified]
        if not group_methods:
            continue
        handles.append(Line2D([], [], linestyle="none", marker="none"))
        labels.append(title)
        for m in group_methods:
            p = pairs(g, m)
            n = sum(1 for _, b in p if b > 0)
            zeros = len(p) - n
            total = len(g["bounds"][m])
            handles.append(Line2D([], [], linestyle="none", marker=style.marker(m), markersize=4.5,
                                  markeredgewidth=0.9, color=style.colour(m),
                                  markerfacecolor=style.colour(m) if certified else "none"))
            notes = []
            if with_counts and n < total:
                notes.append(f"{n}/{total} plotted" if n else "none plotted")
            if with_counts and zeros:
                notes.append(f"{zeros} at 0")
            labels.append(f"{m} ({', '.join(notes)})" if notes else m)
    return handles, labels


def bold_headers(legend):
    for text in legend.get_texts():
        if text.get_text() in ("certified bounds", "estimated bounds", "attacks"):
            text.set_fontweight("bold")


def figure_with_legend(plt, width, height, legend_width):
    """A figure of width x height inches: a plot, and an axes-free column on
    the right for the legend."""
    fig = plt.figure(figsize=(width, height), layout="constrained")
    grid = fig.add_gridspec(1, 2, width_ratios=[width - legend_width, legend_width])
    ax = fig.add_subplot(grid[0, 0])
    side = fig.add_subplot(grid[0, 1])
    side.axis("off")
    return fig, ax, side


def plain_log_ticks(axis):
    """Tick labels as plain numbers (0.01, 0.3, 2) on a log axis; over a
    short span the 2, 3 and 5 multiples are labelled too. Call it once the
    limits are set."""
    from matplotlib.ticker import FuncFormatter, NullFormatter
    low, high = axis.get_view_interval()
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if low > 0 and math.log10(high / low) < 1.6:
        def minor(v, _):
            mantissa = v / 10 ** math.floor(math.log10(v) + 1e-9)
            return f"{v:g}" if any(abs(mantissa - m) < 1e-6 for m in (2, 3, 5)) else ""
        axis.set_minor_formatter(FuncFormatter(minor))
    else:
        axis.set_minor_formatter(NullFormatter())


def samples_text(n, what):
    return f"{n} sample{'' if n == 1 else 's'} {what}" if n else f"no sample {what}"


def no_data(ax, message):
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=7,
            color="0.3", wrap=True)


def plot_tightness(plt, g, model, norm, style):
    methods = ordered_bounds(g)
    fig, ax, side = figure_with_legend(plt, 7.0, 3.3, 2.6)
    xs, ys = [], []
    for m in methods:
        p = [(a, b) for a, b in pairs(g, m) if b > 0]
        if not p:
            continue
        certified = g["certified"][m]
        ax.scatter([a for a, _ in p], [b for _, b in p], s=14, marker=style.marker(m),
                   linewidths=0.8, edgecolors=style.colour(m),
                   facecolors=style.colour(m) if certified else "none",
                   alpha=0.85, zorder=3)
        xs += [a for a, _ in p]
        ys += [b for _, b in p]
    n = len(g["reference"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    if xs:
        # x: the references; y: the bounds and the references (y = x in view).
        x_low, x_high = min(xs) / 1.4, max(xs) * 1.4
        y_low, y_high = min(ys + xs) / 1.4, max(ys + xs) * 1.4
        line = [min(x_low, y_low), max(x_high, y_high)]
        ax.plot(line, line, color="black", linewidth=0.8, zorder=2)
        ax.plot(line, [v / 10 for v in line], color="0.6", linewidth=0.6, linestyle=":", zorder=1)
        ax.set_xlim(x_low, x_high)
        ax.set_ylim(y_low, y_high)
        plain_log_ticks(ax.xaxis)
        plain_log_ticks(ax.yaxis)
    else:
        no_data(ax, "no sample with both a successful attack\nand a finite bound")
    ax.grid(True, which="major")
    ax.set_xlabel(f"reference distortion {delta(norm)} (smallest attack)")
    ax.set_ylabel(f"lower bound on {delta(norm)}")
    ax.set_title(f"{model}, {NORM_TEXT.get(norm, norm)}: bound vs. attack "
                 f"({samples_text(n, 'with a successful attack')})")
    handles, labels = legend_handles(plt, g, style, methods, with_counts=True)
    from matplotlib.lines import Line2D
    handles += [Line2D([], [], color="black", linewidth=0.8), Line2D([], [], color="0.6", linewidth=0.6, linestyle=":")]
    labels += ["y = x (bound = attack)", "y = x / 10"]
    legend = side.legend(handles, labels, loc="center left", frameon=False, borderaxespad=0,
                         handletextpad=0.4, labelspacing=0.35)
    bold_headers(legend)
    return fig


def plot_cdf(plt, g, model, norm, style):
    methods = ordered_bounds(g)
    fig, ax, side = figure_with_legend(plt, 7.0, 3.0, 2.6)
    series = {}
    positives = []
    for m in methods:
        t = [b / a for a, b in pairs(g, m)]
        series[m] = t
        positives += [x for x in t if x > 0]
    if positives:
        low = min(min(positives), 1.0) / 1.5
        high = max(max(positives), 1.0) * 1.5
        for m in methods:
            t = series[m]
            if not t:
                continue
            zeros = sum(1 for x in t if x <= 0)
            xs = sorted(x for x in t if x > 0)
            n = len(t)
            # The empirical CDF as steps; zeros start it above 0 at the left edge.
            step_x = [low] + xs
            step_y = [zeros / n] + [(zeros + i + 1) / n for i in range(len(xs))]
            ax.step(step_x, step_y, where="post", color=style.colour(m),
                    linestyle="-" if g["certified"][m] else "--", linewidth=1.1)
            if zeros:  # bounds of 0: the CDF starts above 0, marked at the left edge
                ax.plot([low], [zeros / n], marker=">", color=style.colour(m), markersize=4,
                        clip_on=False, zorder=4)
            if len(xs) == 1:  # a single sample: mark it
                ax.plot(xs, [1.0], marker=style.marker(m), color=style.colour(m), markersize=3.5,
                        markerfacecolor=style.colour(m) if g["certified"][m] else "none")
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        plain_log_ticks(ax.xaxis)
    else:
        ax.set_xscale("log")
        no_data(ax, "no sample with both a successful attack\nand a finite bound")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="major")
    ax.set_xlabel("tightness: bound / reference distortion (1 = exact)")
    ax.set_ylabel("fraction of samples")
    ax.set_title(f"{model}, {NORM_TEXT.get(norm, norm)}: tightness distribution "
                 f"({samples_text(len(g['reference']), 'with a successful attack')})")
    from matplotlib.lines import Line2D
    handles, labels = legend_handles(plt, g, style, methods, with_counts=True)
    # Lines rather than markers: solid for certified, dashed for estimated.
    lines = []
    for h, label in zip(handles, labels):
        if h.get_marker() in ("none", "None", None) and label.endswith("bounds"):
            lines.append(h)
            continue
        method = label.split(" (")[0]
        lines.append(Line2D([], [], color=style.colour(method),
                            linestyle="-" if g["certified"].get(method) else "--", linewidth=1.1))
    legend = side.legend(lines, labels, loc="center left", frameon=False, borderaxespad=0,
                         handlelength=1.8, handletextpad=0.5, labelspacing=0.35)
    bold_headers(legend)
    return fig


def plot_runtime(plt, g, model, norm, style):
    rows = []  # (label, median seconds or None, kind, method)
    for m in sorted(g["attacks"]):
        s = [r["seconds"] for r in g["attacks"][m] if r["seconds"] is not None]
        rows.append((m, quantile(s, 0.5) if s else None, "attack", m))
    for m in ordered_bounds(g):
        s = [r["seconds"] for r in g["bounds"][m] if r["seconds"] is not None]
        rows.append((m, quantile(s, 0.5) if s else None, "bound", m))
    height = 1.2 + 0.17 * len(rows)
    fig, ax = plt.subplots(figsize=(3.5, height), layout="constrained")
    positive = [s for _, s, _, _ in rows if s is not None and s > 0]
    floor = min(positive) / 2 if positive else 1e-3
    ceiling = max(positive) if positive else 1.0
    ys = list(range(len(rows)))[::-1]
    for y, (label, seconds, kind, method) in zip(ys, rows):
        if seconds is None:
            ax.text(floor * 1.1, y, "no time", va="center", fontsize=7, color="0.4")
            continue
        width = max(seconds, floor)
        if kind == "attack":
            ax.barh(y, width, left=0, color="0.75", edgecolor="0.35", hatch="////", linewidth=0.5, height=0.7)
        else:
            certified = g["certified"][method]
            ax.barh(y, width, color=style.colour(method) if certified else "white",
                    edgecolor=style.colour(method), linewidth=1.0, height=0.7)
        ax.text(width * 1.08, y, f"{seconds:.3g}", va="center", fontsize=7)
    ax.set_yticks(ys)
    ax.set_yticklabels([label for label, _, _, _ in rows])
    for tick, (_, _, kind, _) in zip(ax.get_yticklabels(), rows):
        if kind == "attack":
            tick.set_fontstyle("italic")
    ax.set_xscale("log")
    ax.set_xlim(floor / 1.5, ceiling * 6)
    plain_log_ticks(ax.xaxis)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    n_attacks = len(g["attacks"])
    if 0 < n_attacks < len(rows):
        ax.axhline(len(rows) - n_attacks - 0.5, color="0.3", linewidth=0.6)
    ax.grid(True, axis="x", which="major")
    ax.set_xlabel("median time per sample (s)")
    fig.suptitle(f"{model}, {NORM_TEXT.get(norm, norm)}: cost per sample", x=0.02, ha="left",
                 fontsize=8)
    from matplotlib.patches import Patch
    handles = [Patch(facecolor="0.75", edgecolor="0.35", hatch="////", linewidth=0.5, label="attack"),
               Patch(facecolor="0.3", edgecolor="0.3", label="certified"),
               Patch(facecolor="white", edgecolor="0.3", label="estimated")]
    # Above the bars, right-aligned: it may reach over the method names, not
    # past the figure (constrained layout would shrink the bars to nothing).
    ax.legend(handles=handles, loc="lower right", ncol=3, frameon=False, bbox_to_anchor=(1.0, 1.0),
              borderaxespad=0.2, handlelength=1.2, handletextpad=0.4, columnspacing=0.8)
    return fig


def plot_overview(plt, groups):
    """Median tightness (p10 to p90) per bound method, one marker per
    (model, norm)."""
    keys = list(groups)
    methods = []
    certified = {}
    stats = {}  # (key, method) -> (p10, median, p90)
    for key in keys:
        g = groups[key]
        for m in g["bounds"]:
            certified[m] = certified.get(m, False) or g["certified"][m]
            if m not in methods:
                methods.append(m)
            t = [b / a for a, b in pairs(g, m)]
            if t:
                stats[(key, m)] = (quantile(t, 0.1), quantile(t, 0.5), quantile(t, 0.9))

    def order(m):
        medians = [stats[(k, m)][1] for k in keys if (k, m) in stats]
        return (not certified[m], -(max(medians) if medians else -1), m)

    methods.sort(key=order)
    height = 1.2 + 0.22 * max(len(methods), 1) + 0.12 * len(keys)
    fig, ax = plt.subplots(figsize=(7.0, height), layout="constrained")
    positive = [v for s in stats.values() for v in s if v > 0]
    # The left edge stands for 0 (a bound of 0: nothing certified), shown
    # with a hollow triangle pointing left; p10 of 0 reaches the edge.
    edge = min(min(positive), 1.0) / 2 if positive else 0.01
    ceiling = max(max(positive), 1.0) * 1.5 if positive else 2.0
    markers = ["o", "s", "^", "D", "v", "P", "X", "<", ">"]
    colours = Style.COLOURS
    offsets = [0.0] if len(keys) == 1 else [0.3 * (i / (len(keys) - 1) - 0.5) * 2 for i in range(len(keys))]
    ys = list(range(len(methods)))[::-1]
    any_zero = False
    for k, key in enumerate(keys):
        xs, yy, lo, hi = [], [], [], []
        zeros = []
        for y, m in zip(ys, methods):
            if (key, m) not in stats:
                continue
            p10, median, p90 = (max(v, edge) for v in stats[(key, m)])
            if stats[(key, m)][1] <= 0:
                zeros.append(y + offsets[k])
                continue
            xs.append(median)
            yy.append(y + offsets[k])
            lo.append(median - p10)
            hi.append(p90 - median)
        colour = colours[k % len(colours)]
        label = f"{key[0]}, {NORM_TEXT.get(key[1], key[1])}"
        if not any(k2 == key for k2, _ in stats):
            label += " (no successful attack)"
        ax.errorbar(xs, yy, xerr=[lo, hi], fmt=markers[k % len(markers)], color=colour, markersize=4,
                    elinewidth=0.8, capsize=0, label=label)
        if zeros:
            any_zero = True
            ax.plot([edge] * len(zeros), zeros, linestyle="none", marker="<", markersize=5,
                    markerfacecolor="none", color=colour, clip_on=False, zorder=4)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(edge, ceiling)
    plain_log_ticks(ax.xaxis)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{m}" + ("" if certified[m] else " (est.)") for m in methods])
    n_certified = sum(1 for m in methods if certified[m])
    if 0 < n_certified < len(methods):
        ax.axhline(len(methods) - n_certified - 0.5, color="0.3", linewidth=0.6)
    ax.set_ylim(-0.7, len(methods) - 0.3)
    ax.grid(True, axis="x", which="major")
    ax.set_xlabel("tightness: bound / smallest attack distortion (median, bar: p10 to p90; 1 = exact)"
                  + ("\n(hollow triangle at the left edge: a median of 0)" if any_zero else ""))
    fig.suptitle("Median tightness per bound (certified above the line, estimated below)", x=0.01,
                 ha="left", fontsize=8)
    if not stats:
        no_data(ax, "no sample with both a successful attack and a finite bound")
    else:
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=min(len(keys), 4), frameon=False,
                  borderaxespad=0.2, handletextpad=0.3, columnspacing=1.2)
    return fig


def save(fig, folder, stem, formats, written):
    for extension in formats:
        path = os.path.join(folder, f"{stem}.{extension}")
        fig.savefig(path)
        written.append(path)


def main():
    hand_over_without_matplotlib()
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder with samples.jsonl")
    parser.add_argument("--out", metavar="DIR", help="write the figures here (default: RUN_DIR)")
    parser.add_argument("--formats", default="png,pdf", help="comma-separated file types (default: png,pdf)")
    args = parser.parse_args()
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    for f in formats:
        if f not in ("png", "pdf", "svg"):
            die(f"--formats: unknown type '{f}' (png, pdf, svg)")
    if not formats:
        die("--formats: no type given")
    if not os.path.isdir(args.run_dir):
        die(f"{args.run_dir}: not a folder (expected a run folder with samples.jsonl)")
    records = read_samples(os.path.join(args.run_dir, "samples.jsonl"))
    matplotlib, plt = import_matplotlib()
    out = args.out or args.run_dir
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        die(f"--out {out}: cannot create: {e.strerror}")
    if not os.access(out, os.W_OK):
        die(f"--out {out}: not writable")
    setup(matplotlib)
    groups = group(records)
    methods = []
    for g in groups.values():
        for m in g["bounds"]:
            if m not in methods:
                methods.append(m)
    style = Style(sorted(methods))
    written = []
    try:
        stems = set()
        for (model, norm), g in groups.items():
            stem = base = f"{file_part(model)}-{file_part(norm)}"
            copy = 1
            while stem in stems:  # two TorchScript files of one name in two folders
                copy += 1
                stem = f"{base}-{copy}"
            stems.add(stem)
            for name, plot in (("tightness", plot_tightness), ("cdf", plot_cdf), ("runtime", plot_runtime)):
                fig = plot(plt, g, model, norm, style)
                save(fig, out, f"{name}-{stem}", formats, written)
                plt.close(fig)
        fig = plot_overview(plt, groups)
        save(fig, out, "overview", formats, written)
        plt.close(fig)
    except OSError as e:
        die(f"{e.filename or out}: cannot write: {e.strerror}")
    print(f"{PROG}: {len(records)} records, {len(groups)} (model, norm) pair{'s' if len(groups) != 1 else ''}, "
          f"{len(written)} files in {out}")


if __name__ == "__main__":
    main()
