#!/usr/bin/env python
"""Train or evaluate a DDOD (or any dense detector) LazyConfig with :class:`ddod.engine.Trainer`.

Examples:
::
    # train (add train.device=cpu on a machine without a GPU)
    python train_net.py --config-file configs/<config>.py --num-gpus 8
    # continue the run in train.output_dir from its last checkpoint
    python train_net.py --config-file configs/<config>.py --num-gpus 8 --resume
    # evaluate weights
    python train_net.py --config-file configs/<config>.py --eval-only \\
        train.init_checkpoint=/path/to/model_final.pth

Everything after the flags is a ``path.key=value`` config override, e.g. ``train.max_iter=20``.
A key that does not exist in the config is an error; write ``+path.key=value`` to add one.
"""

import importlib.util
import logging
import os
import sys


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

from detectron2.config import LazyConfig  # noqa: E402
from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from ddod.engine import DetectionCheckpointer, Trainer, apply_overrides  # noqa: E402

logger = logging.getLogger("ddod.train_net")


def setup(args):
    """Load the config, apply the command-line overrides, and set up logging and the output dir."""
    if not args.config_file:
        raise ValueError("--config-file is required (a LazyConfig .py or a saved config.yaml).")
    cfg = LazyConfig.load(args.config_file)
    cfg = apply_overrides(cfg, args.opts)
    default_setup(cfg, args)
    # default_setup sets up the "detectron2" and "fvcore" loggers; ours logs e.g. the checkpoint
    # loading report.
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="ddod")
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
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
