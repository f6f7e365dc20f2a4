"""Start-of-run set-up for scripts: loggers, run files in the output directory, seeds.

:func:`default_setup` does what detectron2's ``default_setup`` does, with a quieter console: the
environment report, the full config and (later, from ``Trainer.build_model``) the model printout
go to files in ``train.output_dir`` instead of hundreds of console lines, and ``log.txt`` holds
plain text (v0.6 logs the config file through a syntax highlighter, whose ANSI colour codes end
up in ``log.txt``).

Files written to ``train.output_dir`` by the main process:

* ``config.yaml``: the full config (``LazyConfig.save``), which ``--config-file`` accepts again;
* ``env.txt``: detectron2's ``collect_env_info()`` report;
* ``model.txt``: the model printout (:func:`write_model_summary`);
* ``log.txt``: the log, plain text.
"""
import logging
import os

import torch

from detectron2.config import LazyConfig
from detectron2.utils import comm
from detectron2.utils.collect_env import collect_env_info
from detectron2.utils.env import seed_all_rng
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger

__all__ = ["PROJECT_LOGGERS", "default_setup", "setup_project_loggers", "write_model_summary"]

logger = logging.getLogger(__name__)

# the loggers a run shows: detectron2's, fvcore's (checkpointer) and this project's
PROJECT_LOGGERS = ("detectron2", "fvcore", "ddod")


def setup_project_loggers(output_dir=None) -> None:
    """Console (main process, coloured prefix) and ``output_dir/log.txt`` (plain) handlers for
    the detectron2, fvcore and ddod loggers."""
    for name in PROJECT_LOGGERS:
        setup_logger(output_dir, distributed_rank=comm.get_rank(), name=name)


def _environment_report() -> str:
    # Importing torch.utils.cpp_extension (done by collect_env_info) logs a "No CUDA runtime is
    # found" warning on a CPU-only machine: true, expected here, and not worth a console line.
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)
    try:
        return collect_env_info()
    finally:
        cpp_logger.setLevel(level)


def default_setup(cfg, args) -> None:
    """Set up logging, save the run's config and environment report, and seed the RNGs.

    Args:
        cfg: the LazyConfig (``train.output_dir``, ``train.seed``, ``train.cudnn_benchmark``).
        args: the parsed command line (logged; ``eval_only`` leaves cudnn.benchmark alone).
    """
    output_dir = cfg.train.output_dir
    if comm.is_main_process() and output_dir:
        PathManager.mkdirs(output_dir)
    setup_project_loggers(output_dir)
    log = logging.getLogger("ddod")
    log.info(f"Rank of current process: {comm.get_rank()}. World size: {comm.get_world_size()}")
    log.info(f"Command line arguments: {args}")
    if comm.is_main_process() and output_dir:
        env_path = os.path.join(output_dir, "env.txt")
        with PathManager.open(env_path, "w") as f:
            f.write(_environment_report() + "\n")
        config_path = os.path.join(output_dir, "config.yaml")
        LazyConfig.save(cfg, config_path)
        log.info(f"Full config saved to {config_path}; environment report to {env_path}.")

    seed = cfg.train.get("seed", -1)
    seed_all_rng(None if seed is None or seed < 0 else seed + comm.get_rank())
    if not getattr(args, "eval_only", False):
        torch.backends.cudnn.benchmark = bool(cfg.train.get("cudnn_benchmark", False))


def write_model_summary(model: torch.nn.Module, output_dir) -> str:
    """Write the model printout to ``output_dir/model.txt`` (main process) and return a one-line
    summary (class and parameter counts) for the log."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    summary = (
        f"{type(model).__name__}: {total / 1e6:.2f}M parameters ({trainable / 1e6:.2f}M trainable)"
    )
    if output_dir and comm.is_main_process():
        PathManager.mkdirs(output_dir)
        path = os.path.join(output_dir, "model.txt")
        with PathManager.open(path, "w") as f:
            f.write(f"{summary}\n\n{model}\n")
        summary += f"; printout in {path}"
    return summary
