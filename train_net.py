#!/usr/bin/env python
"""Train or evaluate a dense-detector LazyConfig (DDOD and the related detectors of this project)
with :class:`ddod.engine.Trainer`, Detectron2's ``DefaultTrainer`` machinery and ``launch``.

Run ``python train_net.py --help`` for the usage and examples.
"""

import importlib.util
import logging
import os
import sys

# OpenMP threads that spin while they wait for work hold on to their core, and a CPU training
# step collapses when other processes need the cores (12.9 s instead of 3.0 s was seen on a busy
# 2-core host); threads that never spin (OMP_WAIT_POLICY=PASSIVE) lose time on a quiet one.
# A short spin before sleeping keeps the best of both. Quickstart step on a 2-core host, quiet /
# with 2 busy processes (python -m benchmarks.cpu_load): libgomp's default 0.145 / 0.534 s,
# PASSIVE 0.226 / 0.465 s, GOMP_SPINCOUNT=10000 0.144 / 0.330 s. libgomp reads it when torch
# loads, so it is set before any import of torch; a wait policy or spin count set by the user wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")


def _import_ddod():
    """Import ``ddod`` (registers the models and patches detectron2 v0.6; see ddod/compat.py).

    When it is not installed (``pip install -e .``), load it from ``projects/DDOD`` next to this
    script, so that a fresh clone runs as is. The module is registered as ``ddod`` so that
    configs doing ``from ddod.modeling import ...`` find it.
    """
    try:
        import ddod
    except ModuleNotFoundError as e:
        if e.name != "ddod":
            raise
        package_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "projects", "DDOD")
        spec = importlib.util.spec_from_file_location(
            "ddod",
            os.path.join(package_dir, "__init__.py"),
            submodule_search_locations=[package_dir],
        )
        if spec is None:
            raise ModuleNotFoundError(
                f"Cannot import 'ddod': it is not installed and '{package_dir}' does not exist. "
                "Run `pip install -e .` in the repository root."
            ) from e
        ddod = importlib.util.module_from_spec(spec)
        sys.modules["ddod"] = ddod
        try:
            spec.loader.exec_module(ddod)
        except BaseException:
            del sys.modules["ddod"]
            raise
    return ddod


_import_ddod()  # before any detectron2 submodule: ddod.compat must run first

import argparse  # noqa: E402

from detectron2.config import LazyConfig  # noqa: E402
from detectron2.engine import default_argument_parser, launch  # noqa: E402

from ddod.data.coco_json import use_coco_json  # noqa: E402
from ddod.engine import DetectionCheckpointer, Trainer, apply_overrides  # noqa: E402
from ddod.engine.setup import default_setup  # noqa: E402

logger = logging.getLogger("ddod.train_net")

EXAMPLES = """
Examples:
  # the CPU quickstart: a small DDOD on the built-in digits dataset
  python train_net.py --config-file configs/quickstart/ddod_digits_cpu.py

  # DDOD R-50 1x on COCO, 8 GPUs; continue it after an interruption
  python train_net.py --config-file configs/ddod_R50_1x.py --num-gpus 8
  python train_net.py --config-file configs/ddod_R50_1x.py --num-gpus 8 --resume

  # evaluate a checkpoint (the run's saved config.yaml works as --config-file too)
  python train_net.py --config-file configs/ddod_R50_1x.py --eval-only \\
      train.init_checkpoint=output/ddod_R50_1x/model_final.pth

  # your own COCO-format data: classes and their number come from the json
  python train_net.py --config-file configs/ddod_R50_1x.py --num-gpus 8 \\
      --train-json data/train.json --train-images data/train \\
      --test-json data/val.json --test-images data/val train.output_dir=output/mine

Everything after the flags is a path.key=value config override (train.max_iter=20,
train.device=cpu, optimizer.lr=0.005, ...). A key that does not exist is an error; write
+path.key=value to add one. Several machines: --num-machines N --machine-rank R
--dist-url tcp://HOST:PORT.
"""


def build_argument_parser() -> argparse.ArgumentParser:
    """Detectron2's standard flags (--config-file, --resume, --eval-only, --num-gpus, ...) plus
    the own-dataset flags, with this project's usage text."""
    parser = default_argument_parser(epilog=EXAMPLES)
    parser.description = (
        "Train or evaluate a DDOD-family dense detector from a LazyConfig (.py)\n"
        "or a run's saved config.yaml."
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    own_help = {
        "opts": "config overrides, path.key=value (e.g. train.max_iter=20 train.device=cpu)",
        "resume": "continue the run in train.output_dir from its last checkpoint (weights, "
        "optimizer, iteration, data order)",
        "config_file": "a LazyConfig .py (configs/...) or a run's saved config.yaml",
    }
    for action in parser._actions:
        action.help = own_help.get(action.dest, action.help)
    group = parser.add_argument_group(
        "own COCO-format dataset",
        "Train and/or evaluate on a COCO instances json and its image folder instead of\n"
        "the config's datasets. The paths are recorded in the run's config.yaml, so the run\n"
        "can be evaluated again with --config-file <output_dir>/config.yaml --eval-only.",
    )
    group.add_argument("--train-json", metavar="FILE", help="COCO json of the training set")
    group.add_argument("--train-images", metavar="DIR", help="image folder of the training set")
    group.add_argument("--test-json", metavar="FILE", help="COCO json of the evaluation set")
    group.add_argument("--test-images", metavar="DIR", help="image folder of the evaluation set")
    group.add_argument(
        "--dataset-name",
        default="custom",
        metavar="NAME",
        help="registered as NAME_train / NAME_test (default: custom)",
    )
    return parser


def _json_and_images(args, split: str):
    # getattr: callers may parse with detectron2's own default_argument_parser
    json_file = getattr(args, f"{split}_json", None)
    images = getattr(args, f"{split}_images", None)
    if (json_file is None) != (images is None):
        raise SystemExit(f"--{split}-json and --{split}-images must be given together.")
    return None if json_file is None else (json_file, images)


def setup(args):
    """Load the config, apply the dataset flags and the overrides, set up logging and the
    output directory (config.yaml, env.txt, log.txt)."""
    if not args.config_file:
        raise ValueError("--config-file is required (a LazyConfig .py or a saved config.yaml).")
    cfg = LazyConfig.load(args.config_file)
    # (datasets recorded in a saved config.yaml are registered by the Trainer)
    train, test = _json_and_images(args, "train"), _json_and_images(args, "test")
    if train or test:
        use_coco_json(cfg, train=train, test=test, name=getattr(args, "dataset_name", "custom"))
    cfg = apply_overrides(cfg, args.opts)
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)

    if args.eval_only:
        model = Trainer.build_model(cfg)
        model = Trainer.create_ddp_model(cfg, model)
        if not cfg.train.init_checkpoint:
            logger.warning("--eval-only without train.init_checkpoint: evaluating random weights.")
        DetectionCheckpointer(model, cfg.train.output_dir).load(cfg.train.init_checkpoint)
        return Trainer.test(cfg, model)

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = build_argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
