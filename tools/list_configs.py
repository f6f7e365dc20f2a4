#!/usr/bin/env python
"""List every config of the project, and the papers' COCO results next to the table configs.

Every config under ``configs/`` except the shared pieces in ``configs/common/`` is listed: the
main configs (``configs/*.py``), the CPU quickstarts (``configs/quickstart/``), the method
combinations (``configs/combos/``), single-switch variants (``configs/variants/``), and one
config per row of each paper's tables (``configs/paper/`` for DDOD's, ``configs/paper_*/`` for
the others and for the stronger backbones). A table config records
its row's published numbers in a top-level ``paper`` key (``method``, default "DDOD", ``table``,
``row``, ``AP``...). The "ours AP" column shows the AP of a run of the config when its
``train.output_dir`` (relative to the current directory, or to ``--output-root``) holds a
``metrics.json`` with an evaluation, and stays empty otherwise.

Usage::

    python tools/list_configs.py                        # every config, Markdown
    python tools/list_configs.py --table 3 4            # only Tables 3 and 4 (of every paper)
    python tools/list_configs.py --method VFNet --table 3
"""
import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")
PAPER_CONFIGS = os.path.join(CONFIGS, "paper")
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# (glob under configs/, kind), in listing order; configs/common holds pieces, not configs
GROUPS = (
    ("*.py", "main"),
    ("quickstart/*.py", "quickstart"),
    ("combos/*.py", "combination"),
    ("variants/*.py", "variant"),
    ("paper*/table*/*.py", "paper"),
)


def _import_ddod():
    # train_net.py knows how to import the package from a fresh clone (projects/DDOD).
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import train_net  # noqa: F401  (imports ddod, which configs import)


def find_configs():
    """(path, kind) of every config, kinds in GROUPS order, paths sorted within a kind."""
    found = []
    for pattern, kind in GROUPS:
        found += [(p, kind) for p in sorted(glob.glob(os.path.join(CONFIGS, pattern)))]
    return found


def _table_number(path) -> int:
    folder = os.path.basename(os.path.dirname(path))  # "table6_dcn_position"
    return int(folder[len("table"):].split("_")[0])


def find_paper_configs(tables=None):
    """Paths of DDOD's table configs (configs/paper/), sorted by table then file name;
    ``tables`` filters (ints)."""
    paths = sorted(glob.glob(os.path.join(PAPER_CONFIGS, "table*", "*.py")))
    if tables:
        paths = [p for p in paths if _table_number(p) in set(tables)]
    return paths


def describe(path, max_chars: int = 100) -> str:
    """The first sentence of the config's leading comment (what it is), at most ``max_chars``."""
    words = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("#") or line == "#":
                break
            words += line.lstrip("#").split()
    text = " ".join(words)
    depth = 0
    for i, char in enumerate(text):  # cut at the first ". ", ": " or "; " outside parentheses
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".:;" and text[i + 1 : i + 2] in (" ", ""):
            text = text[:i]
            break
    return text if len(text) <= max_chars else text[: max_chars - 3].rsplit(" ", 1)[0] + "..."


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


def collect_rows(paths_and_kinds, output_root="."):
    """One dict per config: method, table, row, config path, the paper's metrics, ours."""
    rows = []
    for path, kind in paths_and_kinds:
        cfg = load_paper_config(path)
        if "paper" in cfg:
            row = paper_row(cfg)
            row.setdefault("method", "DDOD")
        elif kind == "paper":
            raise KeyError(f"{os.path.relpath(path, ROOT)}: a table config needs a 'paper' key.")
        else:
            row = {"method": "", "table": kind, "row": describe(path)}
        row["config"] = os.path.relpath(path, ROOT)
        output_dir = cfg.train.output_dir if "train" in cfg else None
        ours = read_eval_metrics(os.path.join(output_root, output_dir)) if output_dir else None
        row["ours"] = None if ours is None else ours["AP"]
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("Usage::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--table", type=int, nargs="+", help="only these paper table numbers")
    parser.add_argument("--method", help="only this paper's tables (DDOD, VFNet, ...)")
    parser.add_argument(
        "--output-root",
        default=".",
        help="directory the configs' relative train.output_dir are resolved against",
    )
    args = parser.parse_args(argv)

    found = find_configs()
    if args.table or args.method:
        # every config with a paper row: the tables' configs and top-level ones that carry a
        # ``paper`` key (the WIDER FACE configs of DDOD's Table 9)
        rows = [r for r in collect_rows(found, args.output_root) if r["method"]]
        known = sorted({(r["method"], r["table"]) for r in rows}, key=lambda mt: (mt[0], str(mt[1])))
        if args.method:
            rows = [r for r in rows if r["method"].lower() == args.method.lower()]
            if not rows:
                methods = sorted({m for m, _ in known})
                parser.error(f"no paper configs for --method {args.method!r}; methods: {methods}")
        if args.table:
            rows = [r for r in rows if r["table"] in set(args.table)]
            missing = set(args.table) - {r["table"] for r in rows}
            if missing:
                listing = "; ".join(
                    f"{m}: {', '.join(str(t) for mm, t in known if mm == m)}"
                    for m in sorted({m for m, _ in known})
                )
                parser.error(f"no table {sorted(missing)} in the configs (tables: {listing})")
    else:
        rows = collect_rows(found, args.output_root)
    columns = [
        ("method", lambda r: r["method"]),
        ("table", lambda r: r["table"]),
        ("row", lambda r: r["row"]),
        ("config", lambda r: f"`{r['config']}`"),
    ]
    columns += [(f"paper {m}", lambda r, m=m: _fmt(r.get(m))) for m in METRICS]
    if any("easy" in r for r in rows):
        # WIDER FACE rows report AP on the easy / medium / hard subsets instead of COCO's
        columns += [
            ("paper easy/medium/hard", lambda r: "/".join(
                _fmt(r.get(k)) for k in ("easy", "medium", "hard")) if "easy" in r else "")
        ]
    columns += [("ours AP", lambda r: _fmt(r["ours"]))]
    print(format_table(rows, columns))
    return rows


if __name__ == "__main__":
    main()
