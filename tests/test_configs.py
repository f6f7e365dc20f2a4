"""Every LazyConfig under configs/ loads, survives a save/load round trip and builds its model;
the yacs path builds and trains DDOD too."""
import glob
import os

import pytest
import torch

import ddod  # noqa: F401
from detectron2.config import LazyConfig, instantiate
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from ddod.modeling import DDOD, CostATSSAssigner

from .common import make_input
from .common import small_yacs_cfg as common_small_yacs_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    p
    for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True)
    if os.sep + "common" + os.sep not in p
)


def test_there_are_configs():
    names = {os.path.relpath(p, os.path.join(ROOT, "configs")) for p in CONFIGS}
    assert {"ddod_R50_1x.py", os.path.join("quickstart", "ddod_digits_cpu.py")} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_loads_roundtrips_and_builds(path, tmp_path):
    cfg = LazyConfig.load(path)
    for key in ("model", "dataloader", "optimizer", "lr_multiplier", "train"):
        assert key in cfg, f"{path} has no '{key}'"
    saved = str(tmp_path / "config.yaml")
    LazyConfig.save(cfg, saved)
    assert not os.path.exists(saved + ".pkl"), "config is not plain-yaml serialisable"
    reloaded = LazyConfig.load(saved)
    model = instantiate(reloaded.model)
    assert isinstance(model, torch.nn.Module)
    instantiate(reloaded.lr_multiplier)


def test_ddod_r50_1x_matches_the_reference_recipe():
    cfg = LazyConfig.load(os.path.join(ROOT, "configs", "ddod_R50_1x.py"))
    model = instantiate(cfg.model)
    assert isinstance(model, DDOD)
    assert isinstance(model.cls_assigner, CostATSSAssigner) and model.cls_assigner.alpha == 0.8
    assert isinstance(model.reg_assigner, CostATSSAssigner) and model.reg_assigner.alpha == 0.5
    assert model.level_reweighting is not None and model.level_reweighting.num_levels == 5
    assert model.num_classes == 80
    assert [a[0] for a in cfg.model.anchor_generator.sizes] == [64, 128, 256, 512, 1024]
    assert cfg.model.anchor_generator.offset == 0.0
    assert (model.test_score_thresh, model.test_topk_candidates) == (0.05, 1000)
    assert (model.test_nms_thresh, model.max_detections_per_image) == (0.6, 100)
    assert cfg.dataloader.train.total_batch_size == 16 and cfg.optimizer.lr == 0.01
    assert cfg.train.max_iter == 90000
    assert cfg.dataloader.train.dataset.names == "coco_2017_train"
    assert cfg.dataloader.test.dataset.names == "coco_2017_val"
    assert cfg.train.init_checkpoint.endswith("R-50.pkl")


def small_yacs_cfg():
    cfg = common_small_yacs_cfg()
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    return cfg


def test_yacs_build_trains_and_infers():
    cfg = small_yacs_cfg()
    model = build_model(cfg)
    assert isinstance(model, DDOD)
    assert model.cls_assigner.alpha == 0.8 and model.reg_assigner.alpha == 0.5
    assert type(model.head).__name__ == "DDODHead"
    model.train()
    with EventStorage():
        losses = model([make_input(256, 256, [[20, 30, 200, 180]], [1])])
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_iou"}
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 256, 256) * 255}])
    assert "instances" in out[0]


def test_yacs_switches_turn_disentanglements_off():
    cfg = small_yacs_cfg()
    cfg.MODEL.DDOD.SEPARATE_ASSIGNMENT = False
    cfg.MODEL.DDOD.CLS_ALPHA = -1
    cfg.MODEL.DDOD.CLS_DEFORM_INDEX = -1
    cfg.MODEL.DDOD.REG_DEFORM_INDEX = -1
    cfg.MODEL.DDOD.LEVEL_REWEIGHTING = False
    model = build_model(cfg)
    assert model.reg_assigner is None and not model.cls_assigner.uses_predictions
    assert model.level_reweighting is None
    assert not any("conv_offset" in n for n, _ in model.named_parameters())
