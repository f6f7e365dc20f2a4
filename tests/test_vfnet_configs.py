"""VarifocalNet's configs: the official R50 1x recipe, one config per row of the paper's ablation
tables (Tables 2, 3, 5) with the paper's numbers, and the combinations with DDOD's parts."""
import glob
import os

import pytest
import torch

import ddod  # noqa: F401
from detectron2.config import LazyConfig, instantiate

from ddod.modeling import (
    ATSSAssigner,
    CostATSSAssigner,
    DDODHead,
    FocalLoss,
    LevelReweighting,
    VarifocalLoss,
    VFNetHead,
)

from .common import ROOT

CONFIGS = os.path.join(ROOT, "configs")
TABLE_ROWS = {
    "table2_vfl_hyperparameters": [
        "gamma1.0_alpha0.50", "gamma1.5_alpha0.75", "gamma2.0_alpha0.75",
        "gamma2.0_alpha0.75_no_q", "gamma2.5_alpha1.25", "gamma3.0_alpha1.00",
    ],
    "table3_components": ["fl", "vfl", "star_dcn", "refinement"],
    "table5_vfl_generality": [
        f"{m}_{loss}" for m in ("retinanet", "atss", "vfnet") for loss in ("fl", "vfl")
    ],
}  # fmt: skip


def load(rel):
    return LazyConfig.load(os.path.join(CONFIGS, rel))


def test_vfnet_r50_1x_is_the_official_recipe():
    cfg = load("vfnet_R50_1x.py")
    m = cfg.model
    assert m.head._target_ is VFNetHead and m.head.num_convs == 3
    assert list(m.head.reg_denoms) == [64, 128, 256, 512, 1024] and m.head.gradient_mul == 0.1
    assert m.cls_loss._target_ is VarifocalLoss
    assert (m.cls_loss.alpha, m.cls_loss.gamma, m.cls_loss.iou_weighted) == (0.75, 2.0, True)
    assert m.cls_assigner._target_ is ATSSAssigner and m.reg_assigner is None
    assert m.level_reweighting is None and m.quality_target is None
    assert (m.loss_bbox_weight, m.loss_init_bbox_weight) == (2.0, 1.5)
    assert m.iou_weighted_box_loss
    assert m.test_score_mode == "cls" and m.test_nms_thresh == 0.6
    assert m.anchor_generator.offset == 0.0 and m.backbone.top_block.relu_before_p7
    assert cfg.dataloader.train.total_batch_size == 16 and cfg.optimizer.lr == 0.01
    # 2x lr and no decay on biases; 500-iteration warm-up from 0.1x; steps at epochs 8 and 11
    cfg.optimizer.params.model = torch.nn.Conv2d(3, 4, 3)
    param_groups = instantiate(cfg.optimizer).param_groups
    groups = {tuple(p.shape): g for g in param_groups for p in g["params"]}
    assert (groups[(4, 3, 3, 3)]["lr"], groups[(4, 3, 3, 3)]["weight_decay"]) == (0.01, 1e-4)
    assert (groups[(4,)]["lr"], groups[(4,)]["weight_decay"]) == (0.02, 0.0)
    sched = instantiate(cfg.lr_multiplier)
    assert sched(0.0) == pytest.approx(0.1) and sched(500 / 90000) == pytest.approx(1.0)
    assert sched(59999 / 90000) == 1.0 and sched(60000 / 90000) == pytest.approx(0.1)
    assert sched(82500 / 90000) == pytest.approx(0.01) and cfg.train.max_iter == 90000


def test_one_config_per_row_with_the_papers_numbers():
    root = os.path.join(CONFIGS, "paper_vfnet")
    found = sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "*", "*.py")))
    assert found == sorted(f"{t}/{r}.py" for t, rows in TABLE_ROWS.items() for r in rows)
    full = {"table2_vfl_hyperparameters/gamma2.0_alpha0.75.py", "table3_components/refinement.py",
            "table5_vfl_generality/vfnet_vfl.py"}  # fmt: skip
    for rel in found:
        cfg = load(os.path.join("paper_vfnet", rel))
        paper = cfg.paper
        assert paper.method == "VFNet" and paper.table == int(rel[5]), rel
        assert {"row", "AP", "AP50", "AP75"} <= set(paper), rel
        assert 30 < paper.AP < 45 and paper.AP < paper.AP50, rel
        if rel in full:  # these rows are the full VFNet: 41.6 / 59.5 / 45.0, the base model
            assert (paper.AP, paper.AP50, paper.AP75) == (41.6, 59.5, 45.0)
            assert cfg.model == load("vfnet_R50_1x.py").model, rel


def test_rows_switch_what_their_row_says():
    def model(rel):
        return load(os.path.join("paper_vfnet", rel)).model

    fl = model("table3_components/fl.py")
    assert fl.cls_loss._target_ is FocalLoss and not fl.head.star_dcn and not fl.head.refine
    star = model("table3_components/star_dcn.py")
    assert star.cls_loss._target_ is VarifocalLoss and star.head.star_dcn and not star.head.refine
    assert not model("table2_vfl_hyperparameters/gamma2.0_alpha0.75_no_q.py").cls_loss.iou_weighted
    g1 = instantiate(model("table2_vfl_hyperparameters/gamma1.0_alpha0.50.py").cls_loss)
    assert (g1.gamma, g1.alpha) == (1.0, 0.5)
    retina = model("table5_vfl_generality/retinanet_vfl.py")
    assert retina.cls_loss._target_ is VarifocalLoss and retina.head.num_anchors == 9
    atss = model("table5_vfl_generality/atss_fl.py")
    assert atss.cls_loss._target_ is FocalLoss and atss.reg_assigner is None


def test_combinations_compose_vfnet_and_ddod_parts():
    ddod_vfl = load("combos/ddod_vfl.py").model
    assert ddod_vfl.cls_loss._target_ is VarifocalLoss and ddod_vfl.head._target_ is DDODHead
    assert ddod_vfl.reg_assigner._target_ is CostATSSAssigner and ddod_vfl.head.quality_branch
    assign = load("combos/vfnet_ddod_assignment.py").model
    assert assign.head._target_ is VFNetHead
    assert (assign.cls_assigner.alpha, assign.reg_assigner.alpha) == (0.8, 0.5)
    reweight = load("combos/vfnet_level_reweighting.py").model
    assert reweight.level_reweighting._target_ is LevelReweighting
    assert reweight.level_reweighting.strategy == "linear_interpolate"
    both = load("combos/vfnet_ddod.py").model
    assert both.reg_assigner._target_ is CostATSSAssigner and both.level_reweighting is not None
    assert load("variants/vfnet_box_loss_paper_eq3.py").model.iou_weighting == "scored_iou"
