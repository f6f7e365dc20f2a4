#!/usr/bin/env python
"""Small-scale study: train paper table configs, scaled down to the built-in digits dataset, and
print one table of COCO AP per config next to the paper's AP.

Every table config under configs/paper/ (COCO, R-50, 1x) is mapped by :func:`digits_variant` to
the CPU-sized setting of configs/quickstart/ddod_digits_cpu.py: the same 256-px digits data, the
same tiny ResNet-18/16 backbone with 64-channel FPN and head, object sizes (anchors, FCOS size
ranges) scaled by 1/4, and the same optimizer, schedule, seed and number of iterations for every
config. Only the config's own detector choices (assigners, head switches, losses, level weights)
differ between rows. Configs whose scaled-down models are identical (e.g. Table 3's ATSS and
Table 4's baseline) are trained once.

Each run is ``train_net.py`` in a subprocess (a fresh process per run: its own logging, seeds
and RNG state), writing to ``OUTPUT/<run>/``; the table goes to stdout and
``OUTPUT/study_table.md``.

Usage::

    python tools/study.py --tables 3 4 --iters 500 --output /tmp/study
    python tools/study.py --configs configs/paper/table6_dcn_position/position2.py --iters 300
    python tools/study.py --tables 3 --dry-run      # write the scaled configs, train nothing

The paper's gains come from COCO-scale training; at this scale the differences between rows are
within the noise of a single seed, and the table says what was measured, nothing more.
"""
import argparse
import copy
import hashlib
import json
import os
import subprocess
import sys
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

from list_configs import (  # noqa: E402
    METRICS,
    _fmt,
    _import_ddod,
    find_paper_configs,
    format_table,
    load_paper_config,
    paper_row,
    read_eval_metrics,
)

QUICKSTART = os.path.join(ROOT, "configs", "quickstart", "ddod_digits_cpu.py")
# Digits images are 256 px with objects of 16-192 px; the quickstart's anchors are 2 x stride
# where COCO's ATSS/DDOD anchors are 8 x stride. Every object-size parameter (anchor sizes,
# FCOS's per-level ranges) is scaled by the same factor, so that RetinaNet's 9 anchors, ATSS's
# single anchor and FCOS's ranges keep their relation to each other and to the strides.
OBJECT_SIZE_SCALE = 0.25


def _load_schedule_module():
    """configs/common/schedule.py as a module (a config file, so not importable by name)."""
    import importlib.util

    path = os.path.join(ROOT, "configs", "common", "schedule.py")
    spec = importlib.util.spec_from_file_location("ddod_study_schedule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_point_based(model):
    """FCOS-style models configure their "anchors" as stride x stride points: those sizes are the
    coder's normaliser, not object sizes, and must not be scaled."""
    gen = model.anchor_generator
    return [list(s) for s in gen.sizes] == [[s] for s in gen.strides]


def _scale_fcos_ranges(assigner, factor):
    if assigner is not None and "size_ranges" in assigner:
        assigner.size_ranges = [[lo if lo < 0 else lo * factor, hi * factor]
                                for lo, hi in assigner.size_ranges]  # fmt: skip


def digits_variant(cfg, *, max_iter, output_dir, seed=42):
    """Map a COCO table config to its digits/CPU variant (a new config; ``cfg`` is unchanged).

    Args:
        cfg: a loaded table config (configs/paper/**).
        max_iter: training iterations (the schedule's warm-up and steps follow the quickstart's).
        output_dir: ``train.output_dir`` of the run.
        seed: ``train.seed``.
    """
    _import_ddod()
    from detectron2.config import LazyConfig
    from detectron2.layers import ShapeSpec

    quick = LazyConfig.load(QUICKSTART)
    cfg = copy.deepcopy(cfg)
    model, small = cfg.model, quick.model

    # Backbone, FPN and head widths of the quickstart (R18 at 16 base channels, BN, from scratch).
    model.backbone.bottom_up = small.backbone.bottom_up
    model.backbone.out_channels = small.backbone.out_channels
    top = model.backbone.top_block
    if top.get("in_feature", "p5") == "res5":  # RetinaNet: P6 from res5 (BasicBlock: 8 x base)
        top.in_channels = small.backbone.bottom_up.stages.base_channels * 8
    else:
        top.in_channels = small.backbone.out_channels
    top.out_channels = small.backbone.out_channels
    model.head.input_shape = [ShapeSpec(channels=small.backbone.out_channels)] * len(
        model.head_in_features
    )
    model.head.conv_dims = small.head.conv_dims
    model.num_classes = small.num_classes
    model.pixel_mean = small.pixel_mean
    model.pixel_std = small.pixel_std

    # Object sizes.
    if not _is_point_based(model):
        model.anchor_generator.sizes = [
            [size * OBJECT_SIZE_SCALE for size in level] for level in model.anchor_generator.sizes
        ]
    _scale_fcos_ranges(model.cls_assigner, OBJECT_SIZE_SCALE)
    _scale_fcos_ranges(model.get("reg_assigner"), OBJECT_SIZE_SCALE)

    # Data, optimizer, schedule and loop of the quickstart, with the study's length and seed, at
    # the study's own batch size and lr (8 images, 0.02: the setting of the README's table,
    # measured before the quickstart itself moved to 4 images at 0.01).
    cfg.dataloader = quick.dataloader
    cfg.dataloader.train.total_batch_size = 8
    cfg.optimizer = quick.optimizer
    cfg.optimizer.lr = 0.02
    cfg.lr_multiplier = _load_schedule_module().multistep_schedule(max_iter, warmup_iters=50)
    cfg.train = quick.train
    cfg.train.max_iter = max_iter
    cfg.train.seed = seed
    cfg.train.eval_period = 0
    cfg.train.checkpointer.period = max_iter
    cfg.train.output_dir = output_dir
    return cfg


def _run_name(path):
    """"configs/paper/table3_bases/atss.py" -> "table3_bases__atss"."""
    rel = os.path.relpath(path, os.path.join(ROOT, "configs", "paper"))
    return os.path.splitext(rel)[0].replace(os.sep, "__")


def _model_key(cfg):
    """A hash of the model config: equal keys mean the same detector (trained once)."""
    from omegaconf import OmegaConf

    text = OmegaConf.to_yaml(cfg.model, resolve=False)
    return hashlib.sha1(text.encode()).hexdigest()


def plan_runs(paths, *, max_iter, output, seed):
    """Scaled configs for ``paths``, grouped by identical model.

    Returns:
        runs: list of dicts (name, cfg, configs: list of table-config paths sharing the run).
        rows: one dict per table config (config path, paper row, run name).
    """
    runs, by_key, rows = [], {}, []
    for path in paths:
        cfg = load_paper_config(path)
        name = _run_name(path)
        small = digits_variant(cfg, max_iter=max_iter, output_dir=os.path.join(output, name),
                               seed=seed)  # fmt: skip
        key = _model_key(small)
        if key not in by_key:
            by_key[key] = {"name": name, "cfg": small, "configs": []}
            runs.append(by_key[key])
        run = by_key[key]
        run["configs"].append(path)
        rows.append({"config": os.path.relpath(path, ROOT), "paper": paper_row(cfg),
                     "run": run["name"]})  # fmt: skip
    return runs, rows


def train_run(run, *, output, threads=1, python=sys.executable, skip_existing=False):
    """Train and evaluate one scaled config through train_net.py; returns (metrics, seconds)."""
    from detectron2.config import LazyConfig

    run_dir = os.path.join(output, run["name"])
    os.makedirs(run_dir, exist_ok=True)
    if skip_existing:
        done = read_eval_metrics(run_dir)
        if done is not None:
            return done, None
    config_path = os.path.join(run_dir, "study_config.yaml")
    LazyConfig.save(run["cfg"], config_path)
    cmd = [python, os.path.join(ROOT, "train_net.py"), "--config-file", config_path,
           "train.device=cpu"]  # fmt: skip
    # One intra-op thread by default: on a small shared CPU, several processes each running as
    # many OpenMP threads as there are cores oversubscribe it, and the spinning threads made a
    # step ~6x slower (5.3 s instead of 0.84 s measured on 2 cores next to another job).
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.time()
    with open(os.path.join(run_dir, "stdout.log"), "w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.time() - start
    if proc.returncode != 0:
        print(f"[study] {run['name']} failed (exit {proc.returncode}); see {run_dir}/stdout.log",
              flush=True)  # fmt: skip
        return None, seconds
    return read_eval_metrics(run_dir), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, nargs="*", default=[], help="table numbers (1-7)")
    parser.add_argument("--configs", nargs="*", default=[], help="table config files")
    parser.add_argument("--iters", type=int, default=500, help="training iterations per config")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of each training process (OMP_NUM_THREADS)")
    parser.add_argument("--output", default="./output/study", help="where runs and the table go")
    parser.add_argument("--dry-run", action="store_true", help="write the scaled configs only")
    parser.add_argument("--skip-existing", action="store_true",
                        help="reuse runs whose output already holds an evaluation")
    args = parser.parse_args(argv)

    paths = find_paper_configs(args.tables) if args.tables else []
    paths += [os.path.abspath(p) for p in args.configs]
    if not paths:
        parser.error("choose configs with --tables and/or --configs")
    output = os.path.abspath(args.output)
    os.makedirs(output, exist_ok=True)
    runs, rows = plan_runs(paths, max_iter=args.iters, output=output, seed=args.seed)
    print(f"[study] {len(rows)} configs, {len(runs)} distinct runs of {args.iters} iterations, "
          f"output in {output}", flush=True)  # fmt: skip

    results, seconds = {}, {}
    study_start = time.time()
    for i, run in enumerate(runs):
        if args.dry_run:
            from detectron2.config import LazyConfig

            os.makedirs(os.path.join(output, run["name"]), exist_ok=True)
            LazyConfig.save(run["cfg"], os.path.join(output, run["name"], "study_config.yaml"))
            continue
        print(f"[study] run {i + 1}/{len(runs)}: {run['name']} "
              f"(configs: {', '.join(os.path.relpath(p, ROOT) for p in run['configs'])})",
              flush=True)  # fmt: skip
        results[run["name"]], seconds[run["name"]] = train_run(
            run, output=output, threads=args.threads, skip_existing=args.skip_existing
        )
        took = seconds[run["name"]]
        print(f"[study]   AP {_fmt((results[run['name']] or {}).get('AP'))}"
              + (f" in {took:.0f} s" if took is not None else " (existing)"), flush=True)
    total = time.time() - study_start

    columns = [
        ("table", lambda r: r["paper"]["table"]),
        ("row", lambda r: r["paper"]["row"]),
        ("config", lambda r: f"`{r['config']}`"),
        ("paper AP (COCO)", lambda r: _fmt(r["paper"].get("AP"))),
    ]
    columns += [(f"digits {m}", lambda r, m=m: _fmt((results.get(r["run"]) or {}).get(m)))
                for m in METRICS]  # fmt: skip
    columns += [("run", lambda r: r["run"])]
    table = format_table(rows, columns)
    footer = (f"\n{len(runs)} runs x {args.iters} iterations on the digits dataset "
              f"(seed {args.seed}, {args.threads} thread(s) per run), {total / 60:.1f} min in all.")
    print(table + footer)
    with open(os.path.join(output, "study_table.md"), "w") as f:
        f.write(table + footer + "\n")
    with open(os.path.join(output, "study_results.json"), "w") as f:
        json.dump({"iters": args.iters, "seed": args.seed, "rows": rows, "results": results,
                   "seconds": seconds, "total_seconds": total}, f, indent=1)  # fmt: skip
    return rows, results


if __name__ == "__main__":
    main()
