"""What the picture tools (tools/visualize_*.py, tools/browse_dataset.py) share: loading a config
with checked overrides, building the model with its weights, the dataset's class names."""

import logging
import os
from typing import Optional, Sequence, Tuple

import torch

from detectron2.config import LazyConfig, instantiate
from detectron2.data import Metadata, MetadataCatalog

from ..data.coco_json import register_config_datasets
from ..engine import DetectionCheckpointer, apply_overrides

__all__ = ["load_config", "build_model_with_weights", "dataset_metadata"]

logger = logging.getLogger(__name__)


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
