"""GFL as a host of the framework: QFL and DFL against hand-computed values, the integral box
representation and its decoding, and the detector's GFL losses."""
import math

import pytest
import torch

import ddod  # noqa: F401
from detectron2.layers import ShapeSpec
from detectron2.utils.events import EventStorage

from ddod.modeling import (
    ATSSAssigner,
    Box2BoxTransformLTRB,
    DistributionFocalLoss,
    GFLHead,
    QualityFocalLoss,
)
from ddod.modeling.heads.gfl_head import distribution_integral
from ddod.modeling.losses import distribution_focal_loss, quality_focal_loss

from .common import make_input, tiny_ddod


def test_quality_focal_loss_hand_computed():
    # p = 0.75 (logit ln 3), y = 0.25: BCE = -(0.25 ln 0.75 + 0.75 ln 0.25), |p - y|^2 = 0.25
    logits = torch.tensor([[math.log(3.0), 0.0, 0.0]])
    targets = torch.tensor([[0.25, 0.5, 0.0]])
    loss = quality_focal_loss(logits, targets, beta=2.0)
    expected0 = -(0.25 * math.log(0.75) + 0.75 * math.log(0.25)) * 0.25
    assert loss[0, 0].item() == pytest.approx(expected0, rel=1e-5)
    assert loss[0, 1].item() == pytest.approx(0.0, abs=1e-7)  # p = y: no loss
    assert loss[0, 2].item() == pytest.approx(math.log(2) * 0.25, rel=1e-5)  # negative, p = 0.5


def test_quality_focal_loss_module_puts_the_iou_at_the_class():
    logits = torch.zeros(3, 4)
    labels = torch.tensor([2, 4, 0])  # 4 = background
    iou = torch.tensor([0.5, 0.9, 0.0])
    per_anchor = QualityFocalLoss(beta=2.0)(logits, labels, iou)
    neg = math.log(2) * 0.25
    assert per_anchor[0].item() == pytest.approx(3 * neg, rel=1e-5)  # its class: p = y = 0.5
    assert per_anchor[1].item() == pytest.approx(4 * neg, rel=1e-5)  # background: IoU unused
    assert per_anchor[2].item() == pytest.approx(4 * neg, rel=1e-5)  # IoU 0: like a negative
    assert QualityFocalLoss.needs_iou_targets
    with pytest.raises(ValueError):
        QualityFocalLoss(beta=-1)


def test_distribution_focal_loss_hand_computed():
    probs = torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1])
    logits = probs.log()[None]
    # y = 1.5: bins 1 and 2 with weights 0.5, 0.5
    assert distribution_focal_loss(logits, torch.tensor([1.5]))[0].item() == pytest.approx(
        -(0.5 * math.log(0.2) + 0.5 * math.log(0.4)), rel=1e-5
    )
    # y = 2.25: bins 2 (0.75) and 3 (0.25)
    assert distribution_focal_loss(logits, torch.tensor([2.25]))[0].item() == pytest.approx(
        -(0.75 * math.log(0.4) + 0.25 * math.log(0.2)), rel=1e-5
    )
    # module: mean over the 4 sides, targets clamped to reg_max - 0.01
    dfl = DistributionFocalLoss(reg_max=4)
    side_logits = logits.expand(4, 5)[None]  # (1, 4, 5)
    far = dfl(side_logits, torch.tensor([[9.0, 9.0, 9.0, 9.0]]))
    expected = -(0.01 * math.log(0.2) + 0.99 * math.log(0.1))
    assert far.item() == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="bins"):
        dfl(torch.zeros(1, 4, 7), torch.zeros(1, 4))


def test_integral_and_decoding():
    reg_max = 4
    logits = torch.zeros(1, 4 * (reg_max + 1), 1, 1)
    logits[0, 3] = 50.0  # left side: all mass on bin 3
    # top side uniform: expectation 2; right: half on 1, half on 2 -> 1.5
    logits[0, 2 * 5 + 1] = logits[0, 2 * 5 + 2] = 50.0
    logits[0, 3 * 5 + 4] = 50.0  # bottom: 4
    d = distribution_integral(logits, reg_max)[0, :, 0, 0]
    assert torch.allclose(d, torch.tensor([3.0, 2.0, 1.5, 4.0]), atol=1e-4)
    # distances in strides from an 8 x stride anchor (stride 16: a 128-px anchor at (64, 64))
    coder = Box2BoxTransformLTRB(normalize_by_size=True, size_divisor=8.0)
    anchor = torch.tensor([[0.0, 0.0, 128.0, 128.0]])
    box = coder.apply_deltas(d[None], anchor)
    assert torch.allclose(box, torch.tensor([[64 - 48.0, 64 - 32.0, 64 + 24.0, 64 + 64.0]]))
    assert torch.allclose(coder.get_deltas(anchor, box), d[None])
    with pytest.raises(ValueError):
        Box2BoxTransformLTRB(size_divisor=0)


def tiny_gfl(reg_max=8):
    model = tiny_ddod(
        cls_assigner=ATSSAssigner(topk=9), reg_assigner=None, level_reweighting=None,
        cls_loss=QualityFocalLoss(beta=2.0),
        box_distribution_loss=DistributionFocalLoss(reg_max=reg_max),
        score_weighted_box_loss=True, quality_target=None, test_score_mode="cls",
        box2box_transform=Box2BoxTransformLTRB(normalize_by_size=True, size_divisor=4.0),
        head={"quality_branch": False},
    )  # fmt: skip
    model.head = GFLHead(
        input_shape=[ShapeSpec(channels=32)] * 5, num_classes=4, reg_max=reg_max, conv_dims=32,
        num_convs=2,
    )  # fmt: skip
    return model


def _losses(model, batch):
    model.train()
    with EventStorage():
        return model(batch)


def test_gfl_losses_empty_image_and_one_object():
    torch.manual_seed(0)
    model = tiny_gfl()
    losses = _losses(model, [make_input(256, 256, [], [])])
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_dfl"}
    assert losses["loss_cls"].item() > 0
    assert losses["loss_bbox"].item() == 0 and losses["loss_dfl"].item() == 0
    sum(losses.values()).backward()
    assert model.head.bbox_pred.weight.grad is not None
    model.zero_grad()
    losses = _losses(model, [make_input(256, 256, [[40, 50, 150, 170]], [2])])
    assert all(math.isfinite(v.item()) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.head.bbox_pred.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 256, 256) * 255}])
    assert len(out[0]["instances"]) <= 100


def test_box_and_dfl_terms_are_weighted_by_the_detached_best_score():
    model = tiny_gfl(reg_max=4)
    anchors = torch.tensor([[0.0, 0.0, 32.0, 32.0], [32.0, 0.0, 64.0, 32.0]])  # stride 8
    gt = torch.tensor([[[4.0, 4.0, 28.0, 28.0], [0.0, 0.0, 0.0, 0.0]]])
    labels = torch.tensor([[1, 4]])
    cls_logits = torch.tensor([[[0.0, math.log(3.0), -5, -5], [0.0, 0.0, 0.0, 0.0]]])
    deltas = torch.full((1, 2, 4), 1.0)
    dist = torch.zeros(1, 2, 4, 5)
    out = model.losses(anchors, [2], cls_logits, deltas, None, labels, labels, gt, None, None,
                       distributions=dist)  # fmt: skip
    # one positive with best score 0.75, normalised by max(sum of scores, 1) = 1 (GFL's clamp):
    # each term is 0.75 x its per-box loss. Target distances 12 px / (32 / 4) = 1.5 strides per
    # side, uniform distributions: DFL = ln 5.
    assert out["loss_dfl"].item() == pytest.approx(0.25 * 0.75 * math.log(5), rel=1e-5)
    # predicted box: 1 stride = 8 px per side around (16, 16), inside the GT: GIoU = IoU
    iou = (16 * 16) / (24 * 24)
    assert out["loss_bbox"].item() == pytest.approx(2.0 * 0.75 * (1 - iou), rel=1e-5)
    # the weights are detached: no gradient from the box terms into the class logits
    for t in (cls_logits, deltas, dist):
        t.requires_grad_(True)
    out = model.losses(anchors, [2], cls_logits, deltas, None, labels, labels, gt, None, None,
                       distributions=dist)  # fmt: skip
    grad = torch.autograd.grad(out["loss_bbox"] + out["loss_dfl"], cls_logits, allow_unused=True)
    assert grad[0] is None or grad[0].abs().sum() == 0


def test_gfl_configs_build_the_official_recipe():
    from detectron2.config import LazyConfig, instantiate

    from .common import ROOT

    cfg = LazyConfig.load(f"{ROOT}/configs/gfl_R50_1x.py")
    m = cfg.model
    assert m.head.reg_max == 16 and m.head.num_convs == 4 and m.loss_bbox_weight == 2.0
    assert m.loss_box_distribution_weight == 0.25 and m.cls_loss.beta == 2.0
    assert m.cls_assigner.topk == 9 and m.reg_assigner is None and m.score_weighted_box_loss
    assert m.anchor_generator.sizes == [[64], [128], [256], [512], [1024]]
    assert m.box2box_transform.size_divisor == 8.0
    assert cfg.optimizer.lr == 0.01 and cfg.train.max_iter == 90000
    model = instantiate(LazyConfig.load(f"{ROOT}/configs/quickstart/gfl_digits_cpu.py").model)
    assert isinstance(model.head, GFLHead)
