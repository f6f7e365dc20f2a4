"""What the picture tools (tools/visualize_*.py, tools/browse_dataset.py) share: their command
line, loading a config with checked overrides, building the model with its weights, the
dataset's class names, seeding."""

import argparse
import logging
import os
import random
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from detectron2.config import LazyConfig, instantiate
from detectron2.data import Metadata, MetadataCatalog

from ..data.coco_json import register_config_datasets
from ..engine import DetectionCheckpointer, apply_overrides

__all__ = [
    "tool_argument_parser",
    "add_config_overrides",
    "load_config",
    "build_model_with_weights",
    "dataset_metadata",
    "seed_all",
]

logger = logging.getLogger(__name__)


def tool_argument_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the tool's docstring ``doc`` as help (first paragraph, then the rest as the
    epilog) and ``--config-file``; finish it with :func:`add_config_overrides`."""
    first, _, rest = doc.partition("\n\n")
    parser = argparse.ArgumentParser(
        description=first, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="LazyConfig file")
    return parser


def add_config_overrides(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The trailing ``path.key=value`` config overrides (after every flag)."""
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER,
        help="config overrides as path.key=value, e.g. train.init_checkpoint=model_final.pth",
    )  # fmt: skip
    return parser


def load_config(config_file: str, opts: Optional[Sequence[str]] = None):
    """A LazyConfig file (.py or a run's saved config.yaml) with ``path.key=value`` overrides;
    an override of a key that does not exist is an error that names it."""
    if not os.path.isfile(config_file):
        raise SystemExit(f"--config-file {config_file!r} does not exist.")
    cfg = apply_overrides(LazyConfig.load(config_file), list(opts or []))
    register_config_datasets(cfg)  # a run's config.yaml may name datasets from --train-json
    return cfg


def build_model_with_weights(cfg) -> Tuple[torch.nn.Module, str]:
    """Build ``cfg.model`` on ``train.device`` (eval mode) and load ``train.init_checkpoint``.

    Returns:
        (model, checkpoint): ``checkpoint`` is the loaded path, "" when the model is untrained
        (a warning is logged: its predictions mean nothing).
    """
    device = cfg.train.get("device", "cuda")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"train.device={device} but CUDA is not available; add train.device=cpu")
    model = instantiate(cfg.model)
    model.to(device)
    model.eval()
    checkpoint = cfg.train.get("init_checkpoint", "") or ""
    if checkpoint:
        DetectionCheckpointer(model).load(checkpoint)
    else:
        logger.warning("train.init_checkpoint is empty: using an untrained model's predictions.")
    return model, checkpoint


def dataset_metadata(dataset_cfg) -> Metadata:
    """The metadata (class names) of the first dataset named in a ``dataloader.*.dataset``
    config; an empty ``Metadata`` (class indices are drawn) for a dataset given otherwise."""
    names = dataset_cfg.get("names") if hasattr(dataset_cfg, "get") else None
    if isinstance(names, str):
        return MetadataCatalog.get(names)
    if names:
        return MetadataCatalog.get(names[0])
    return Metadata()


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch: the data mappers' random augmentations use all three."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
