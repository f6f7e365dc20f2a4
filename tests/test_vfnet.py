"""VarifocalNet's parts: star offsets, the 0.1 gradient, the refinement's detached product, the
varifocal loss (hand-computed), VFNet's box losses, empty / one-GT images, VFL on other bases,
the yacs path and AMP. Hand-checked values follow shared/spec/related_methods.md §1.8 and §1.11.
"""
import math

import pytest
import torch
from torchvision.ops import deform_conv2d, generalized_box_iou_loss

import ddod  # noqa: F401
from detectron2.layers import ShapeSpec
from detectron2.structures import Boxes
from detectron2.structures.boxes import matched_pairwise_iou
from detectron2.utils.events import EventStorage

from ddod.modeling import (
    ATSSAssigner,
    Box2BoxTransformLTRB,
    CostATSSAssigner,
    FocalLoss,
    VarifocalLoss,
    VFNetHead,
)
from ddod.modeling.layers import scale_gradient, star_dcn_offsets
from ddod.modeling.layers.deform_conv import deform_conv2d_cpu
from ddod.modeling.losses import varifocal_loss

from .common import make_input, small_yacs_cfg, tiny_ddod

MMD_BOX = [23.6667, 23.8757, 238.6326, 151.8874]
STRIDES = [8, 16, 32, 64, 128]


def tiny_vfnet(num_classes=4, **overrides):
    """VFNet at toy width: the tiny DDOD backbone, VFNetHead (2 convs of 32), plain ATSS, VFL,
    IoU-weighted GIoU on both boxes, anchors 4 x stride (reg_denoms 32..512)."""
    head_kwargs = dict(
        input_shape=[ShapeSpec(channels=32)] * 5,
        num_classes=num_classes,
        strides=STRIDES,
        reg_denoms=[32, 64, 128, 256, 512],
        conv_dims=32,
        num_convs=2,
    )
    head_kwargs.update(overrides.pop("head", {}))
    kwargs = dict(
        head={"quality_branch": False},  # replaced below: tiny_ddod builds a DDODHead
        box2box_transform=Box2BoxTransformLTRB(normalize_by_size=False),
        cls_assigner=ATSSAssigner(),
        reg_assigner=None,
        level_reweighting=None,
        cls_loss=VarifocalLoss(),
        iou_weighted_box_loss=True,
        loss_bbox_weight=2.0,
        loss_init_bbox_weight=1.5,
        quality_target=None,
        test_score_mode="cls",
    )
    kwargs.update(overrides)
    model = tiny_ddod(num_classes=num_classes, **kwargs)
    model.head = VFNetHead(**head_kwargs)
    return model


def train_losses(model, batch):
    model.train()
    with EventStorage():
        return model(batch)


# ------------------------------------------------------------------------------------------------
# star offsets
# ------------------------------------------------------------------------------------------------
def _bilinear(img, y, x):
    """Bilinear sample of a (H, W) image at (y, x), zero outside (deformable conv's rule)."""
    h, w = img.shape
    y0, x0 = math.floor(y), math.floor(x)
    total = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                total += wy * wx * img[yy, xx].item()
    return total


def test_star_offsets_of_a_known_box_are_the_nine_points():
    # one location at cell (5, 6) of a stride-8 map; box l, t, r, b = 12, 20, 28, 4 pixels
    stride, (cy, cx) = 8.0, (5, 6)
    box = torch.zeros(1, 4, 12, 14)
    box[0, :, cy, cx] = torch.tensor([12.0, 20.0, 28.0, 4.0])
    offset = star_dcn_offsets(box, stride)
    assert offset.shape == (1, 18, 12, 14)
    l, t, r, b = 12 / 8, 20 / 8, 28 / 8, 4 / 8  # in cells
    expected = [  # (y, x) in cells, row-major taps: corners, edge midpoints, the centre
        (cy - t, cx - l), (cy - t, cx), (cy - t, cx + r),
        (cy, cx - l), (cy, cx), (cy, cx + r),
        (cy + b, cx - l), (cy + b, cx), (cy + b, cx + r),
    ]  # fmt: skip
    for k, (ey, ex) in enumerate(expected):
        ky, kx = divmod(k, 3)
        # a deformable conv samples tap k at centre + (ky - 1, kx - 1) + offset
        y = cy + (ky - 1) + offset[0, 2 * k, cy, cx].item()
        x = cx + (kx - 1) + offset[0, 2 * k + 1, cy, cx].item()
        assert (y, x) == pytest.approx((ey, ex), abs=1e-6), k

    # Sampling through the deformable conv reproduces bilinear samples at those points: a
    # weight that copies tap k into output channel k, on a random one-channel image.
    torch.manual_seed(0)
    img = torch.randn(1, 1, 12, 14)
    weight = torch.eye(9).view(9, 1, 3, 3)
    for op in (deform_conv2d, deform_conv2d_cpu):
        out = op(img, offset, weight, padding=1)
        got = out[0, :, cy, cx]
        want = torch.tensor([_bilinear(img[0, 0], y, x) for y, x in expected])
        assert torch.allclose(got, want, atol=1e-5), op


def test_star_offsets_are_zero_displacement_for_a_one_cell_box():
    # a box of one stride per side samples the regular 3x3 grid: all offsets 0
    box = torch.full((2, 4, 3, 5), 16.0)
    assert torch.count_nonzero(star_dcn_offsets(box, 16)) == 0


def test_offsets_scale_the_gradient_into_the_box_by_gradient_mul():
    torch.manual_seed(0)
    box = (torch.rand(2, 4, 6, 7) * 50 + 1).requires_grad_()
    upstream = torch.randn(2, 18, 6, 7)
    grads = {}
    for mul in (1.0, 0.1):
        off = star_dcn_offsets(box, 8, gradient_mul=mul)
        (grads[mul],) = torch.autograd.grad((off * upstream).sum(), box)
        # the forward value does not depend on the factor
        assert torch.allclose(off, star_dcn_offsets(box.detach(), 8, gradient_mul=1.0))
    assert torch.count_nonzero(grads[1.0]) > 0
    assert torch.allclose(grads[0.1], 0.1 * grads[1.0], rtol=1e-5, atol=1e-7)
    x = torch.tensor([2.0], requires_grad=True)
    (g,) = torch.autograd.grad(scale_gradient(x, 0.25) * 3, x)
    assert g.item() == pytest.approx(0.75)


# ------------------------------------------------------------------------------------------------
# the head
# ------------------------------------------------------------------------------------------------
def _head(**kw):
    args = dict(
        input_shape=[ShapeSpec(channels=8)] * 2, num_classes=3, strides=[8, 16],
        reg_denoms=[16, 32], conv_dims=8, num_convs=2, norm="",
    )  # fmt: skip
    args.update(kw)
    return VFNetHead(**args)


def test_head_outputs_and_reference_initialisation():
    torch.manual_seed(0)
    head = _head()
    feats = [torch.randn(2, 8, 10, 12), torch.randn(2, 8, 5, 6)]
    cls, boxes, quality, init = head(feats)
    assert [c.shape for c in cls] == [(2, 3, 10, 12), (2, 3, 5, 6)]
    assert [b.shape for b in boxes] == [(2, 4, 10, 12), (2, 4, 5, 6)] == [i.shape for i in init]
    assert quality == [] and all(b.dtype == torch.float32 and (b > 0).all() for b in boxes)
    assert torch.allclose(head.cls_score.bias, torch.full((3,), -math.log(99)))
    for conv in (head.cls_star_conv, head.refine_star_conv, head.init_bbox_pred):
        assert conv.weight.std().item() == pytest.approx(0.01, rel=0.3)
    # near init every distance is about reg_denom (exp(~0) x reg_denom)
    assert init[0].mean().item() == pytest.approx(16, rel=0.2)
    assert init[1].mean().item() == pytest.approx(32, rel=0.2)
    # without refinement the initial box is the scored box and there is no fourth output
    cls, boxes, _, init = _head(refine=False)(feats)
    assert init == [] and len(boxes) == 2
    with pytest.raises(ValueError):
        _head(refine=True, star_dcn=False)


def test_refinement_loss_reaches_the_initial_box_conv_only_through_the_offsets():
    torch.manual_seed(0)
    feats = [torch.randn(1, 8, 10, 12), torch.randn(1, 8, 5, 6)]
    grads = {}
    for mul in (0.0, 0.1):
        torch.manual_seed(1)
        head = _head(gradient_mul=mul)
        _, boxes, _, init = head(feats)
        refined_loss = sum(b.sum() for b in boxes)
        grads[mul] = torch.autograd.grad(
            refined_loss, [head.init_bbox_pred.weight, head.refine_pred.weight]
        )
        # refined = factors x detached initial box
        factors = [b / i.detach() for b, i in zip(boxes, init)]
        assert all((f > 0).all() for f in factors)
    # with the offsets' gradient switched off, nothing reaches the initial-box conv ...
    assert torch.count_nonzero(grads[0.0][0]) == 0
    assert torch.count_nonzero(grads[0.0][1]) > 0
    # ... and with the reference's 0.1 something does, through the offsets alone
    assert torch.count_nonzero(grads[0.1][0]) > 0


def test_head_under_bf16_autocast_is_finite():
    torch.manual_seed(0)
    head = _head()
    feats = [torch.randn(1, 8, 10, 12), torch.randn(1, 8, 5, 6)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cls, boxes, _, init = head(feats)
    assert all(torch.isfinite(c.float()).all() for c in cls)
    assert all(b.dtype == torch.float32 and torch.isfinite(b).all() for b in boxes + init)


# ------------------------------------------------------------------------------------------------
# varifocal loss
# ------------------------------------------------------------------------------------------------
def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_varifocal_loss_hand_computed_values():
    logits = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    q = torch.tensor([[0.6, 0.0], [0.0, 0.9]])
    loss = varifocal_loss(logits, q, alpha=0.75, gamma=2.0)
    # positive (q = 0.6, p = sigmoid(0.5)): -q (q log p + (1 - q) log(1 - p))
    p = _sig(0.5)
    assert loss[0, 0].item() == pytest.approx(-0.6 * (0.6 * math.log(p) + 0.4 * math.log(1 - p)))
    # negative (q = 0, p = sigmoid(-1)): -alpha p^gamma log(1 - p)
    p = _sig(-1.0)
    assert loss[0, 1].item() == pytest.approx(-0.75 * p**2 * math.log(1 - p))
    p = _sig(2.0)
    assert loss[1, 0].item() == pytest.approx(-0.75 * p**2 * math.log(1 - p))
    p = 0.5
    assert loss[1, 1].item() == pytest.approx(-0.9 * (0.9 * math.log(p) + 0.1 * math.log(1 - p)))
    # iou_weighted=False: positives weighted 1, negatives unchanged
    plain = varifocal_loss(logits, q, alpha=0.75, gamma=2.0, iou_weighted=False)
    p = _sig(0.5)
    assert plain[0, 0].item() == pytest.approx(-(0.6 * math.log(p) + 0.4 * math.log(1 - p)))
    assert plain[0, 1].item() == pytest.approx(loss[0, 1].item())
    # the reference's checks: confident right answers cost ~0
    assert varifocal_loss(torch.tensor([[100.0, -100.0]]), torch.tensor([[1.0, 0.0]])).sum() < 1e-6


def test_varifocal_loss_keeps_p_attached_in_the_negative_weight():
    x = torch.tensor([[0.3]], requires_grad=True)
    (g,) = torch.autograd.grad(varifocal_loss(x, torch.zeros(1, 1), alpha=0.75).sum(), x)
    p = _sig(0.3)
    # d/dx [alpha p^2 (-log(1 - p))] = alpha (2 p^2 (1 - p) (-log(1 - p)) + p^3)
    expected = 0.75 * (2 * p**2 * (1 - p) * -math.log(1 - p) + p**3)
    assert g.item() == pytest.approx(expected, rel=1e-5)


def test_varifocal_loss_module_builds_targets_and_rejects_bad_arguments():
    vfl = VarifocalLoss(alpha=0.75, gamma=2.0)
    logits = torch.tensor([[0.5, -1.0, 0.2], [1.0, 0.0, -2.0]])
    labels = torch.tensor([0, 3])  # class 0; background (K = 3)
    iou = torch.tensor([0.6, 0.7])  # the background row's IoU is never read
    per_anchor = vfl(logits, labels, iou)
    q = torch.tensor([[0.6, 0, 0], [0, 0, 0]])
    assert torch.allclose(per_anchor, varifocal_loss(logits, q).sum(1))
    # an IoU of 0 is clamped to 1e-6: the positive stays a positive
    tiny = vfl(logits[:1], labels[:1], torch.zeros(1))
    p = _sig(0.5)
    pos = -1e-6 * (1e-6 * math.log(p) + (1 - 1e-6) * math.log(1 - p))
    negatives = varifocal_loss(logits[:1, 1:], q[:1, 1:]).sum().item()
    assert tiny.item() == pytest.approx(pos + negatives)
    with pytest.raises(ValueError):
        VarifocalLoss(alpha=-0.1)
    with pytest.raises(ValueError):
        VarifocalLoss(gamma=-1.0)
    with pytest.raises(ValueError):
        varifocal_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        vfl(logits, labels, None)
    assert not FocalLoss().needs_iou_targets and vfl.needs_iou_targets


# ------------------------------------------------------------------------------------------------
# VFNet in the meta-architecture
# ------------------------------------------------------------------------------------------------
def test_empty_image_gives_cls_loss_only_and_stays_connected():
    torch.manual_seed(0)
    model = tiny_vfnet()
    losses = train_losses(model, [make_input(256, 256, [], [])])
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_bbox_init"}
    assert losses["loss_cls"].item() > 0
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_bbox_init"].item() == 0.0
    sum(losses.values()).backward()
    for p in (model.head.init_bbox_pred.weight, model.head.refine_pred.weight,
              model.head.cls_score.weight):  # fmt: skip
        assert p.grad is not None


def test_one_gt_gives_positive_finite_losses():
    torch.manual_seed(0)
    model = tiny_vfnet()
    losses = train_losses(model, [make_input(256, 256, [MMD_BOX], [2])])
    for name in ("loss_cls", "loss_bbox", "loss_bbox_init"):
        assert math.isfinite(losses[name].item()) and losses[name].item() > 0, name
    sum(losses.values()).backward()


def _vfnet_losses_inputs(model):
    anchors = torch.tensor(
        [[0, 0, 32, 32], [32, 0, 64, 32], [0, 32, 32, 64], [32, 32, 64, 64],
         [0, 0, 64, 64], [64, 0, 128, 64.0]]
    )  # fmt: skip
    torch.manual_seed(1)
    cls_logits = torch.randn(1, 6, model.num_classes, requires_grad=True)
    refined = (torch.rand(1, 6, 4) * 30 + 5).requires_grad_()
    init = (torch.rand(1, 6, 4) * 30 + 5).requires_grad_()
    return anchors, cls_logits, refined, init


def test_vfnet_losses_hand_checked():
    """VFL target = IoU of the refined box; GIoU x 2.0 (refined) and x 1.5 (initial), each weighted
    by its own IoU and normalised by their sum."""
    model = tiny_vfnet(num_classes=3)
    anchors, cls_logits, refined, init = _vfnet_losses_inputs(model)
    K = 3
    gt = torch.tensor([4.0, 4.0, 60.0, 60.0])
    labels = torch.tensor([[K, K, K, 1, 1, K]])
    boxes = torch.zeros(1, 6, 4)
    boxes[0, [3, 4]] = gt
    losses = model.losses(
        anchors, [4, 2], cls_logits, refined, None, labels, labels, boxes, None, init
    )
    coder = model.box2box_transform
    pos = [3, 4]

    def decoded(deltas):
        return coder.apply_deltas(deltas[0, pos].detach(), anchors[pos])

    iou_rf = matched_pairwise_iou(Boxes(decoded(refined)), Boxes(gt.expand(2, 4)))
    iou_init = matched_pairwise_iou(Boxes(decoded(init)), Boxes(gt.expand(2, 4)))
    q = torch.zeros(6, K)
    q[pos, 1] = iou_rf
    expected_cls = varifocal_loss(cls_logits[0], q).sum() / 2  # 2 positives
    assert losses["loss_cls"].item() == pytest.approx(expected_cls.item(), rel=1e-5)
    for name, deltas, iou, w in (("loss_bbox", refined, iou_rf, 2.0),
                                 ("loss_bbox_init", init, iou_init, 1.5)):  # fmt: skip
        giou = generalized_box_iou_loss(decoded(deltas), gt.expand(2, 4), reduction="none")
        expected = w * (giou * iou).sum() / iou.sum().clamp(min=1)
        assert losses[name].item() == pytest.approx(expected.item(), rel=1e-4), name
    # the VFL target is detached: no classification gradient into the boxes
    grads = torch.autograd.grad(losses["loss_cls"], [refined, init], allow_unused=True)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads)
    # each box loss reaches only its own box
    (g_init,) = torch.autograd.grad(losses["loss_bbox"], [init], allow_unused=True)
    assert g_init is None or torch.count_nonzero(g_init) == 0

    # the paper's Eq. 3 instead: both boxes weighted by the refined box's IoU (the VFL target q),
    # normalised by the positive count
    model.iou_weighting = "scored_iou"
    losses = model.losses(
        anchors, [4, 2], cls_logits, refined, None, labels, labels, boxes, None, init
    )
    for name, deltas, w in (("loss_bbox", refined, 2.0), ("loss_bbox_init", init, 1.5)):
        giou = generalized_box_iou_loss(decoded(deltas), gt.expand(2, 4), reduction="none")
        expected = w * (giou * iou_rf).sum() / 2
        assert losses[name].item() == pytest.approx(expected.item(), rel=1e-4), name
    with pytest.raises(ValueError):
        tiny_vfnet(iou_weighting="paper")


def test_vfl_on_ddod_uses_the_predicted_box_iou_of_the_cls_assignment():
    """DDOD + VFL: the classification target at a cls positive is the IoU of DDOD's predicted box
    with the GT of the *classification* assignment (the two assignments differ)."""
    model = tiny_ddod(num_classes=3, level_reweighting=None, cls_loss=VarifocalLoss())
    anchors = torch.tensor(
        [[0, 0, 32, 32], [32, 0, 64, 32], [0, 32, 32, 64], [32, 32, 64, 64],
         [0, 0, 64, 64], [64, 0, 128, 64.0]]
    )  # fmt: skip
    torch.manual_seed(1)
    cls_logits = torch.randn(1, 6, 3, requires_grad=True)
    deltas = (torch.randn(1, 6, 4) * 0.1).requires_grad_()
    quality = torch.randn(1, 6, requires_grad=True)
    K = 3
    cls_gt, reg_gt = torch.tensor([2.0, 2.0, 30.0, 34.0]), torch.tensor([4.0, 4.0, 60.0, 60.0])
    cls_labels = torch.tensor([[2, K, K, K, K, K]])
    reg_labels = torch.tensor([[K, K, K, 1, 1, K]])
    cls_boxes, reg_boxes = torch.zeros(1, 6, 4), torch.zeros(1, 6, 4)
    cls_boxes[0, 0] = cls_gt
    reg_boxes[0, [3, 4]] = reg_gt
    losses = model.losses(
        anchors, [4, 2], cls_logits, deltas, quality, cls_labels, reg_labels, reg_boxes, cls_boxes
    )
    pred = model.box2box_transform.apply_deltas(deltas[0, :1].detach(), anchors[:1])
    iou = matched_pairwise_iou(Boxes(pred), Boxes(cls_gt[None]))
    q = torch.zeros(6, K)
    q[0, 2] = iou
    expected = varifocal_loss(cls_logits[0], q).sum() / 1
    assert losses["loss_cls"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_iou"}


@pytest.mark.parametrize("base", ["retinanet", "fcos", "atss", "ddod", "vfnet"])
def test_vfl_selectable_on_every_base(base):
    """cls_loss=VarifocalLoss() on each base model config: builds, trains, gives finite losses."""
    from detectron2.config import LazyCall as L
    from detectron2.config import LazyConfig, instantiate

    from .common import ROOT

    cfg = LazyConfig.load(f"{ROOT}/configs/common/models/{base}.py").model
    cfg.cls_loss = L(VarifocalLoss)(alpha=0.75, gamma=2.0)
    bottom_up = cfg.backbone.bottom_up
    bottom_up.stem.out_channels, bottom_up.stem.norm = 8, "BN"
    bottom_up.stages.depth, bottom_up.stages.base_channels, bottom_up.stages.norm = 18, 8, "BN"
    cfg.backbone.out_channels = 32
    top = cfg.backbone.top_block
    top.in_channels = 64 if top.get("in_feature", "p5") == "res5" else 32
    top.out_channels = 32
    cfg.head.input_shape = [ShapeSpec(channels=32)] * 5
    cfg.head.conv_dims, cfg.head.num_convs = 32, 2
    cfg.num_classes = 4
    torch.manual_seed(0)
    model = instantiate(cfg)
    assert isinstance(model.cls_loss, VarifocalLoss)
    losses = train_losses(model, [make_input(256, 256, [MMD_BOX, [150, 150, 250, 240]], [2, 1])])
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert losses["loss_cls"].item() > 0
    sum(losses.values()).backward()


def test_vfnet_with_ddod_assigners_and_level_reweighting_trains():
    from ddod.modeling import LevelReweighting

    torch.manual_seed(0)
    model = tiny_vfnet(
        cls_assigner=CostATSSAssigner(alpha=0.8),
        reg_assigner=CostATSSAssigner(alpha=0.5),
        level_reweighting=LevelReweighting(5),
    )
    batch = [make_input(256, 256, [MMD_BOX, [150, 150, 250, 240]], [2, 1])]
    losses = train_losses(model, batch)
    assert all(math.isfinite(v.item()) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.level_reweighting.cls_pos_count.sum() > 0


def test_vfnet_inference_scores_the_refined_box():
    torch.manual_seed(0)
    model = tiny_vfnet()
    model.eval()
    model.test_score_thresh = 0.0
    captured = {}
    head_forward = model.head.forward

    def capture(features):
        captured["out"] = head_forward(features)
        return captured["out"]

    model.head.forward = capture
    with torch.no_grad():
        (result,) = model([make_input(256, 256, [], [])])
    inst = result["instances"]
    assert 0 < len(inst) <= 100
    cls, boxes, _, init = captured["out"]
    # the best detection's score is a sigmoid of a class logit, with no quality factor
    all_scores = torch.cat([c[0].flatten() for c in cls]).sigmoid()
    assert inst.scores.max().item() == pytest.approx(all_scores.max().item(), rel=1e-5)
    assert not torch.allclose(boxes[0], init[0])


# ------------------------------------------------------------------------------------------------
# yacs
# ------------------------------------------------------------------------------------------------
def test_yacs_vfnet_and_ddod_with_vfl():
    from detectron2.modeling import build_model

    from ddod import add_vfnet_config

    cfg = add_vfnet_config(small_yacs_cfg())  # keeps the small sizes
    assert cfg.MODEL.DDOD.HEAD_CONV_DIMS == 32 and cfg.MODEL.DDOD.HEAD_NUM_CONVS == 3
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model.head, VFNetHead) and isinstance(model.cls_loss, VarifocalLoss)
    assert model.head.reg_denoms == [64, 128, 256, 512, 1024] and model.reg_assigner is None
    assert model.backbone.top_block.relu_before_p7 and model.iou_weighted_box_loss
    losses = train_losses(model, [make_input(256, 256, [MMD_BOX], [2])])
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_bbox_init"}

    ddod_cfg = small_yacs_cfg()
    ddod_cfg.MODEL.DDOD.CLS_LOSS = "varifocal"
    ddod_cfg.MODEL.DDOD.VFL_IOU_WEIGHTED = False
    model = build_model(ddod_cfg)
    assert isinstance(model.cls_loss, VarifocalLoss) and not model.cls_loss.iou_weighted
    assert isinstance(build_model(small_yacs_cfg()).cls_loss, FocalLoss)
    bad = small_yacs_cfg()
    bad.MODEL.DDOD.CLS_LOSS = "gfl"
    with pytest.raises(ValueError):
        build_model(bad)

