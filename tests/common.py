"""Small models and inputs shared by the model tests (CPU-sized)."""
import contextlib
import logging
import uuid

import torch

import ddod  # noqa: F401  (compat + registrations)
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.backbone import FPN, BasicStem, ResNet
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.structures import Boxes, Instances

from ddod.modeling import (
    DDOD,
    CostATSSAssigner,
    DDODHead,
    LastLevelP6P7FromP5,
    LevelReweighting,
    make_resnet_stages,
)

LEVELS = ["p3", "p4", "p5", "p6", "p7"]


def tiny_ddod(num_classes=4, anchor_scale=4, **overrides):
    """A DDOD with every part of the real one at toy width (R18/8 channels, FPN 32, 2 convs)."""
    backbone = FPN(
        bottom_up=ResNet(
            BasicStem(3, 8, norm="BN"),
            make_resnet_stages(18, base_channels=8, norm="BN"),
            out_features=["res3", "res4", "res5"],
        ),
        in_features=["res3", "res4", "res5"],
        out_channels=32,
        top_block=LastLevelP6P7FromP5(32, 32),
    )
    strides = [8, 16, 32, 64, 128]
    head_kwargs = dict(
        input_shape=[ShapeSpec(channels=32)] * 5, num_classes=num_classes, conv_dims=32, num_convs=2
    )
    head_kwargs.update(overrides.pop("head", {}))
    kwargs = dict(
        backbone=backbone,
        head=DDODHead(**head_kwargs),
        head_in_features=LEVELS,
        anchor_generator=DefaultAnchorGenerator(
            sizes=[[anchor_scale * s] for s in strides],
            aspect_ratios=[1.0],
            strides=strides,
            offset=0.0,
        ),
        box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        num_classes=num_classes,
        cls_assigner=CostATSSAssigner(alpha=0.8),
        reg_assigner=CostATSSAssigner(alpha=0.5),
        level_reweighting=LevelReweighting(5, sync=True),
        pixel_mean=[128.0, 128.0, 128.0],
        pixel_std=[64.0, 64.0, 64.0],
    )
    kwargs.update(overrides)
    return DDOD(**kwargs)


def small_yacs_cfg():
    """A yacs config (``add_ddod_config``) for a CPU-sized DDOD: R18, 32-channel FPN and head."""
    from detectron2.config import get_cfg

    from ddod import add_ddod_config

    cfg = get_cfg()
    add_ddod_config(cfg)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.DDOD.HEAD_CONV_DIMS = 32
    cfg.MODEL.DDOD.HEAD_NUM_CONVS = 2
    cfg.MODEL.DDOD.NUM_CLASSES = 4
    return cfg


def make_input(height, width, boxes, classes, seed=0):
    """A training input dict with a random image and the given XYXY boxes / classes."""
    g = torch.Generator().manual_seed(seed)
    inst = Instances((height, width))
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64).reshape(-1)
    return {"image": torch.rand(3, height, width, generator=g) * 255, "instances": inst}


# ------------------------------------------------------------------------------------------------
# Paper table configs at CPU size (tests/test_switches.py, test_bases.py, test_table_configs.py)
# ------------------------------------------------------------------------------------------------
import functools  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_CONFIGS = os.path.join(ROOT, "configs", "paper")


def load_train_net():
    """The repository's train_net.py as a module (the root is not necessarily on sys.path)."""
    spec = importlib.util.spec_from_file_location("train_net", os.path.join(ROOT, "train_net.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=None)
def load_tool(name):
    """tools/<name>.py as a module (tools/ is not a package)."""
    path = os.path.join(ROOT, "tools", name + ".py")
    spec = importlib.util.spec_from_file_location(f"ddod_tool_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def paper_config(rel_path):
    """A table config, e.g. "table3_bases/fcos.py", loaded with LazyConfig."""
    from detectron2.config import LazyConfig

    return LazyConfig.load(os.path.join(PAPER_CONFIGS, rel_path))


def small_paper_model(rel_path, **model_overrides):
    """The model of a table config at the study's digits/CPU size (tools/study.py's
    ``digits_variant``: R18/16 backbone, 64-channel FPN and head, object sizes / 4, 10 classes),
    with ``model_overrides`` set on the model config before it is built. Every detector choice of
    the config (assigners, head switches, losses, level weights) is kept."""
    from detectron2.config import instantiate

    cfg = load_tool("study").digits_variant(paper_config(rel_path), max_iter=1, output_dir="unused")
    for key, value in model_overrides.items():
        node = cfg.model
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return instantiate(cfg.model)


class LogCapture(logging.Handler):
    """Collects the messages of one logger, whatever its propagation (detectron2's setup_logger
    turns propagation off, which hides them from pytest's caplog)."""

    def __init__(self, name):
        super().__init__(logging.DEBUG)
        self.logger = logging.getLogger(name)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    @property
    def text(self):
        return "\n".join(self.messages)

    def __enter__(self):
        self._level = self.logger.level
        self.logger.addHandler(self)
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)


@contextlib.contextmanager
def digits_datasets(root, prefix, num_train, num_val):
    """Tiny digits train/val sets written under ``root`` and registered under names no other
    test uses; unregistered on exit. Yields {"train": name, "val": name}."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from ddod.data import digits as digits_module
    from ddod.data.digits import register_digits_dataset

    tag = uuid.uuid4().hex[:8]
    names = {"train": f"{prefix}_digits_train_{tag}", "val": f"{prefix}_digits_val_{tag}"}
    register_digits_dataset(names["train"], split="train", num_images=num_train, root=root)
    register_digits_dataset(names["val"], split="val", num_images=num_val, root=root)
    try:
        yield names
    finally:
        for name in names.values():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
            digits_module._REGISTERED.pop(name)


def digits_overrides(names):
    """Command-line overrides that train and test a config on the ``digits_datasets`` names."""
    return [
        "train.device=cpu",
        f"dataloader.train.dataset.names={names['train']}",
        f"dataloader.test.dataset.names={names['val']}",
    ]
