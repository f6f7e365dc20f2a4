#!/usr/bin/env python
"""Plot the training curves of one or more runs from their metrics.json files.

Default panels: the losses, the learning rate, DDOD's per-level classification and regression
loss weights (``level_weight/cls_p3`` ...), the positives per image of each branch, and COCO AP
at each evaluation. Several runs go on the same axes (colour per curve, line style per run), e.g.
the rows of a paper table::

    python tools/plot_metrics.py output/quickstart_ddod_digits
    python tools/plot_metrics.py out/atss out/ddod --labels ATSS DDOD --output compare.png
    python tools/plot_metrics.py out/run --keys "loss_*" "bbox/AP*"   # one panel per pattern

A RUN is a training output directory or a metrics.json file. The picture goes to
``<first RUN>/curves.png`` unless ``--output``. Only json and matplotlib are needed: this runs
without torch or detectron2.
"""

import argparse
import fnmatch
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# (panel title, key patterns); a panel whose patterns match nothing in any run is left out.
DEFAULT_PANELS = (
    ("Losses", ("total_loss", "loss_*")),
    ("Learning rate", ("lr",)),
    ("Level weights: classification", ("level_weight/cls_*",)),
    ("Level weights: regression", ("level_weight/reg_*",)),
    ("Positive anchors per image", ("num_pos_cls", "num_pos_reg")),
    ("COCO AP at evaluation", ("bbox/AP", "bbox/AP50", "bbox/AP75", "bbox/APs", "bbox/APm",
                               "bbox/APl")),  # fmt: skip
)
# Prefixes dropped from legend labels, where the panel title already says them.
LABEL_PREFIXES = ("level_weight/cls_", "level_weight/reg_", "bbox/", "num_pos_")
LINE_STYLES = ("-", "--", ":", "-.")
NCOLS = 3

Series = Dict[str, List[Tuple[int, float]]]  # key -> [(iteration, value)], by iteration


def read_metrics(path: str) -> Series:
    """The scalars of a metrics.json (one JSON object per line, detectron2's JSONWriter).

    A line for an iteration already seen (a resumed run writing it again) replaces the earlier
    one; a line that does not parse (the last one while a run is writing it) is skipped.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No metrics.json at {path!r}: is it a training output dir?")
    by_key: Dict[str, Dict[int, float]] = {}
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict) or "iteration" not in record:
                continue
            it = int(record["iteration"])
            for key, value in record.items():
                if key != "iteration" and isinstance(value, (int, float)) and math.isfinite(value):
                    by_key.setdefault(key, {})[it] = float(value)
    return {key: sorted(points.items()) for key, points in by_key.items()}


def match_keys(series: Sequence[Series], patterns: Sequence[str]) -> List[str]:
    """Keys of any run matching the patterns (fnmatch), in pattern order, then sorted."""
    found = []
    all_keys = sorted(set().union(*(s.keys() for s in series)))
    for pattern in patterns:
        found += [k for k in all_keys if fnmatch.fnmatchcase(k, pattern) and k not in found]
    return found


def _short(key: str) -> str:
    for prefix in LABEL_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix):]
    return key


def plot_runs(
    series: Sequence[Series],
    labels: Sequence[str],
    panels: Sequence[Tuple[str, Sequence[str]]] = DEFAULT_PANELS,
) -> Optional[Figure]:
    """A figure with one axes per panel that has data; None when no panel has any."""
    panels = [(title, match_keys(series, patterns)) for title, patterns in panels]
    panels = [(title, keys) for title, keys in panels if keys]
    if not panels:
        return None
    ncols = min(NCOLS, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.1 * nrows + 0.4), dpi=100, facecolor="white")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    colors = [f"C{i}" for i in range(10)]
    for ax, (title, keys) in zip(axes, panels):
        for r, (run, run_label) in enumerate(zip(series, labels)):
            for k, key in enumerate(keys):
                points = run.get(key)
                if not points:
                    continue
                xs, ys = zip(*points)
                # One key compared across runs: a colour per run reads better than line styles.
                one_key = len(keys) == 1 and len(series) > 1
                label = _short(key) if len(series) == 1 else (
                    run_label if len(keys) == 1 else f"{_short(key)} · {run_label}"
                )  # fmt: skip
                ax.plot(
                    xs, ys, label=label,
                    color=colors[(r if one_key else k) % len(colors)],
                    linestyle="-" if one_key else LINE_STYLES[r % len(LINE_STYLES)],
                    marker="o" if len(xs) <= 20 else None, markersize=4, linewidth=1.3,
                )  # fmt: skip
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=2 if len(ax.get_lines()) > 5 else 1)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    runs = ", ".join(labels)
    fig.suptitle(f"Training curves: {runs}", fontsize=11)
    fig.tight_layout()
    return fig


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="output dir or metrics.json")
    parser.add_argument("--labels", nargs="+", help="legend name of each run (default: dir name)")
    parser.add_argument(
        "--keys", nargs="+", metavar="PATTERN",
        help='plot these keys instead, one panel per pattern (fnmatch, e.g. "loss_*")',
    )  # fmt: skip
    parser.add_argument("--output", help="PNG path (default <first RUN>/curves.png)")
    return parser.parse_args(argv)


def _run_label(run: str) -> str:
    path = os.path.abspath(run)
    if os.path.basename(path) == "metrics.json":
        path = os.path.dirname(path)
    return os.path.basename(path)


def main(args) -> str:
    """Write the picture; return its path."""
    if args.labels and len(args.labels) != len(args.runs):
        raise SystemExit(f"--labels has {len(args.labels)} names for {len(args.runs)} runs.")
    labels = args.labels or [_run_label(r) for r in args.runs]
    try:
        series = [read_metrics(run) for run in args.runs]
    except FileNotFoundError as e:
        raise SystemExit(str(e))
    panels = [(p, (p,)) for p in args.keys] if args.keys else DEFAULT_PANELS
    fig = plot_runs(series, labels, panels)
    if fig is None:
        known = sorted(set().union(*(s.keys() for s in series)))
        raise SystemExit(f"No key to plot. The runs have: {', '.join(known) or 'nothing'}.")
    first = args.runs[0]
    default_dir = first if os.path.isdir(first) else os.path.dirname(os.path.abspath(first))
    output = args.output or os.path.join(default_dir, "curves.png")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=fig.dpi)
    for label, run in zip(labels, series):
        iters = max((pts[-1][0] for pts in run.values()), default=-1) + 1
        ap = run.get("bbox/AP")
        print(f"{label}: {iters} iterations" + (f", last bbox/AP {ap[-1][1]:.2f}" if ap else ""))
    print(f"Saved training curves to {output}")
    return output


if __name__ == "__main__":
    main(parse_args())
