#!/usr/bin/env python
"""List the paper's experiment configs (configs/paper/**) next to the paper's COCO results.

Each config under configs/paper/ reproduces one row of one of the paper's Tables 1-7 (COCO,
ResNet-50, 1x) and records that row's published numbers in its top-level ``paper`` key. This
prints them as one table; the "ours" column shows the AP of a run of the config when its
``train.output_dir`` (relative to the current directory, or to ``--output-root``) holds a
``metrics.json`` with an evaluation, and stays empty otherwise.

Usage::

    python tools/list_configs.py                 # every table, Markdown
    python tools/list_configs.py --table 3 4     # only Tables 3 and 4
"""
import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_CONFIGS = os.path.join(ROOT, "configs", "paper")
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _import_ddod():
    # train_net.py knows how to import the package from a fresh clone (projects/DDOD).
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import train_net  # noqa: F401  (imports ddod, which configs import)


def find_paper_configs(tables=None):
    """Paths of the table configs, sorted by table then file name; ``tables`` filters (ints)."""
    paths = sorted(glob.glob(os.path.join(PAPER_CONFIGS, "table*", "*.py")))
    if tables:
        wanted = {f"table{t}_" for t in tables}
        paths = [p for p in paths if any(os.path.basename(os.path.dirname(p)).startswith(w)
                                         for w in wanted)]  # fmt: skip
    return paths


def load_paper_config(path):
    """The LazyConfig of ``path`` (ddod imported first)."""
    _import_ddod()
    from detectron2.config import LazyConfig

    return LazyConfig.load(path)


def paper_row(cfg):
    """The ``paper`` entry of a table config as a plain dict (table, row, AP, ...)."""
    if "paper" not in cfg:
        raise KeyError("config has no top-level 'paper' key")
    return {k: v for k, v in cfg.paper.items()}


def read_eval_metrics(output_dir):
    """The last evaluation in ``output_dir/metrics.json`` as {"AP": ..., ...}, or None."""
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.isfile(path):
        return None
    last = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a partly written last line of a running job
            if "bbox/AP" in record:
                last = record
    if last is None:
        return None
    return {m: last.get(f"bbox/{m}") for m in METRICS}


def _fmt(value):
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN: no detections at all
        return "nan"
    return f"{value:.1f}"


def format_table(rows, columns):
    """Markdown table from a list of dicts."""
    lines = ["| " + " | ".join(c for c, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(fn(row)) for _, fn in columns) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=int, nargs="*", help="only these table numbers")
    parser.add_argument(
        "--output-root",
        default=".",
        help="directory the configs' relative train.output_dir are resolved against",
    )
    args = parser.parse_args(argv)

    rows = []
    for path in find_paper_configs(args.table):
        cfg = load_paper_config(path)
        row = paper_row(cfg)
        row["config"] = os.path.relpath(path, ROOT)
        ours = read_eval_metrics(os.path.join(args.output_root, cfg.train.output_dir))
        row["ours"] = None if ours is None else ours["AP"]
        rows.append(row)
    columns = [
        ("table", lambda r: r["table"]),
        ("row", lambda r: r["row"]),
        ("config", lambda r: f"`{r['config']}`"),
    ]
    columns += [(f"paper {m}", lambda r, m=m: _fmt(r.get(m))) for m in METRICS]
    columns += [("ours AP", lambda r: _fmt(r["ours"]))]
    print(format_table(rows, columns))
    return rows


if __name__ == "__main__":
    main()
