"""DDOD meta-architecture: losses, normalisation, disentanglement, inference, padding, AMP."""
import math

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

import ddod  # noqa: F401
from detectron2.structures import Boxes
from detectron2.utils.events import EventStorage

from ddod.modeling.anchors import valid_anchor_mask
from ddod.modeling.assigners import ATSSAssigner
from ddod.modeling.losses import positive_normalizer

from .common import make_input, tiny_ddod

MMD_BOX = [23.6667, 23.8757, 238.6326, 151.8874]


def train_losses(model, batch):
    model.train()
    with EventStorage():
        return model(batch)


def test_empty_image_gives_cls_loss_only_and_stays_connected():
    torch.manual_seed(0)
    model = tiny_ddod()
    losses = train_losses(model, [make_input(256, 256, [], [])])
    assert losses["loss_cls"].item() > 0
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_iou"].item() == 0.0
    sum(losses.values()).backward()
    assert model.head.bbox_pred.weight.grad is not None
    assert model.head.quality.weight.grad is not None


def test_one_gt_gives_three_positive_finite_losses():
    torch.manual_seed(0)
    model = tiny_ddod()
    losses = train_losses(model, [make_input(256, 256, [MMD_BOX], [2])])
    for name in ("loss_cls", "loss_bbox", "loss_iou"):
        assert math.isfinite(losses[name].item()) and losses[name].item() > 0, name
    sum(losses.values()).backward()


def test_normaliser_counts_at_least_one_per_image():
    pos = torch.zeros(2, 10, dtype=torch.bool)
    pos[0, [1, 4, 7]] = True
    assert positive_normalizer(pos).item() == 4.0  # 3 positives + 1 for the empty image
    assert positive_normalizer(torch.zeros(3, 5, dtype=torch.bool)).item() == 3.0


def _losses_inputs(model, num_anchors=6):
    """Hand-made anchors / predictions on two levels (4 + 2 anchors), one image."""
    anchors = torch.tensor(
        [[0, 0, 32, 32], [32, 0, 64, 32], [0, 32, 32, 64], [32, 32, 64, 64],
         [0, 0, 64, 64], [64, 0, 128, 64.0]]
    )  # fmt: skip
    torch.manual_seed(1)
    cls_logits = torch.randn(1, num_anchors, model.num_classes, requires_grad=True)
    deltas = (torch.randn(1, num_anchors, 4) * 0.1).requires_grad_()
    quality = torch.randn(1, num_anchors, requires_grad=True)
    return anchors, cls_logits, deltas, quality


def test_cls_loss_uses_cls_positives_and_box_losses_use_reg_positives():
    model = tiny_ddod(num_classes=3, level_reweighting=None)
    anchors, cls_logits, deltas, quality = _losses_inputs(model)
    K = model.num_classes
    gt = torch.tensor([4.0, 4.0, 60.0, 60.0])
    cls_labels = torch.tensor([[1, K, K, K, K, K]])  # cls positive: anchor 0
    reg_labels = torch.tensor([[K, K, K, 1, 1, K]])  # reg positives: anchors 3 and 4
    reg_boxes = torch.zeros(1, 6, 4)
    reg_boxes[0, [3, 4]] = gt
    losses = model.losses(anchors, [4, 2], cls_logits, deltas, quality, cls_labels, reg_labels, reg_boxes)

    # focal loss by hand over all 6 valid anchors, normalised by max(1 positive, 1) = 1
    target = torch.zeros(6, K)
    target[0, 1] = 1
    expected_cls = sigmoid_focal_loss(cls_logits[0], target, alpha=0.25, gamma=2.0).sum()
    assert losses["loss_cls"].item() == pytest.approx(expected_cls.item(), rel=1e-5)

    # the box losses only see reg positives: gradient on exactly anchors 3 and 4
    (grad,) = torch.autograd.grad(losses["loss_bbox"], deltas, retain_graph=True)
    assert grad[0].abs().sum(dim=1).nonzero().flatten().tolist() == [3, 4]
    # and GIoU x 2 / 2 positives, by hand
    from torchvision.ops import generalized_box_iou_loss

    pred = model.box2box_transform.apply_deltas(deltas[0, [3, 4]], anchors[[3, 4]])
    expected_bbox = 2.0 * generalized_box_iou_loss(pred, gt.expand(2, 4), reduction="sum") / 2
    assert losses["loss_bbox"].item() == pytest.approx(expected_bbox.item(), rel=1e-4)


def test_iou_branch_target_is_detached_iou_of_the_prediction():
    model = tiny_ddod(num_classes=3, level_reweighting=None)
    anchors, cls_logits, deltas, quality = _losses_inputs(model)
    K = model.num_classes
    gt = torch.tensor([4.0, 4.0, 60.0, 60.0])
    labels = torch.tensor([[K, K, K, 0, K, K]])
    boxes = torch.zeros(1, 6, 4)
    boxes[0, 3] = gt
    losses = model.losses(anchors, [4, 2], cls_logits, deltas, quality, labels, labels, boxes)
    pred = model.box2box_transform.apply_deltas(deltas[0, [3]].detach(), anchors[[3]])
    from detectron2.structures.boxes import matched_pairwise_iou

    iou = matched_pairwise_iou(Boxes(pred), Boxes(gt[None]))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(quality[0, [3]], iou)
    assert losses["loss_iou"].item() == pytest.approx(expected.item(), rel=1e-5)
    grad_deltas, grad_quality = torch.autograd.grad(
        losses["loss_iou"], [deltas, quality], allow_unused=True
    )
    assert grad_deltas is None or torch.count_nonzero(grad_deltas) == 0
    assert grad_quality[0].nonzero().flatten().tolist() == [3]


def test_level_factors_multiply_each_levels_loss():
    model = tiny_ddod(num_classes=3)
    model.level_reweighting = type(model.level_reweighting)(2)
    anchors, cls_logits, deltas, quality = _losses_inputs(model)
    K = model.num_classes
    # cls positives: 3 on level 0, 1 on level 1 -> counts (3, 1) -> factors (1.0, 2.0)
    cls_labels = torch.tensor([[0, 1, 2, K, 0, K]])
    model.head_in_features = ["p3", "p4"]
    reg_boxes = torch.zeros(1, 6, 4)
    losses = model.losses(
        anchors, [4, 2], cls_logits, deltas, quality, cls_labels, torch.full_like(cls_labels, K),
        reg_boxes,
    )  # fmt: skip
    target = torch.nn.functional.one_hot(cls_labels[0], K + 1)[:, :K].float()
    per_anchor = sigmoid_focal_loss(cls_logits[0], target, alpha=0.25, gamma=2.0).sum(1)
    factors = torch.tensor([1.0, 1, 1, 1, 2, 2])
    expected = (per_anchor * factors).sum() / 4
    assert losses["loss_cls"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert model.level_reweighting.cls_pos_count.tolist() == [3, 1]


def test_separate_and_shared_assignment_on_a_real_forward():
    torch.manual_seed(0)
    batch = [make_input(256, 256, [MMD_BOX, [150, 150, 250, 240]], [2, 1])]
    model = tiny_ddod()
    seen = {}

    def spy(name, assigner):
        original = assigner.assign

        def wrapped(*args, **kwargs):
            r = original(*args, **kwargs)
            seen[name] = r.matched_gt.clone()
            return r

        assigner.assign = wrapped

    # separate: a model with predictions that differ from anchors gives different sets
    with torch.no_grad():
        model.head.bbox_pred.bias.normal_(0, 0.5)
        model.head.cls_score.bias.normal_(-2, 2)
    spy("cls", model.cls_assigner)
    spy("reg", model.reg_assigner)
    train_losses(model, batch)
    assert not torch.equal(seen["cls"] >= 0, seen["reg"] >= 0)

    shared = tiny_ddod(reg_assigner=None)
    calls = []
    original = shared.cls_assigner.assign
    shared.cls_assigner.assign = lambda *a, **k: calls.append(1) or original(*a, **k)
    train_losses(shared, batch)
    assert len(calls) == 1  # one assignment serves both branches


def test_shared_grid_candidates_give_the_labels_of_separate_dense_selection():
    """label_anchors selects candidates once on the grid and shares them between DDOD's two
    assigners; the labels must equal two independent dense selections."""
    torch.manual_seed(0)
    model = tiny_ddod()
    with torch.no_grad():
        model.head.bbox_pred.bias.normal_(0, 0.5)
        model.head.cls_score.bias.normal_(-2, 2)
    batch = [
        make_input(256, 256, [MMD_BOX, [150, 150, 250, 240], [0, 0, 40, 30]], [2, 1, 0]),
        make_input(200, 160, [[10, 20, 150, 190], [100, 100, 160, 200]], [1, 3]),
    ]
    captured = {}
    original = model.label_anchors

    def capture(*args, **kwargs):
        captured["args"], captured["kwargs"] = args, kwargs
        return original(*args, **kwargs)

    model.label_anchors = capture
    train_losses(model, batch)
    assert captured["kwargs"]["grid_sizes"] is not None

    calls = []
    select = model.cls_assigner.select_candidates
    model.cls_assigner.select_candidates = lambda *a, **k: calls.append(k) or select(*a, **k)
    fast = original(*captured["args"], **captured["kwargs"])
    assert len(calls) == 2  # once per image, not once per assigner
    assert model.cls_assigner.same_candidates_as(model.reg_assigner)
    # no grid sizes (dense distances) and no sharing: each assigner selects its own
    model.cls_assigner.same_candidates_as = lambda other: False
    dense = original(*captured["args"])
    assert (fast[0] < model.num_classes).sum() > 0
    for a, b in zip(fast, dense):
        assert torch.equal(a, b)


def test_valid_anchor_mask_hand_checked():
    # canvas 128x128 at stride 32 -> 4x4 grid; image 100x60 padded to 128x64 -> 4 rows x 2 cols
    mask = valid_anchor_mask([(4, 4)], [32], 1, [(100, 60), (128, 128)], 32)
    expected0 = torch.tensor([[1, 1, 0, 0]] * 4, dtype=torch.bool).flatten()
    assert torch.equal(mask[0], expected0)
    assert mask[1].all()


def test_padding_anchors_are_ignored_in_assignment_and_losses():
    torch.manual_seed(0)
    model = tiny_ddod(cls_assigner=ATSSAssigner(), reg_assigner=None)
    # the second image is much smaller; its padding anchors must come out as label -1
    batch = [
        make_input(256, 256, [[10, 10, 120, 120]], [1]),
        make_input(96, 64, [[40, 40, 60, 90]], [0], seed=1),
    ]
    captured = {}
    original = model.losses

    def capture(*args):
        captured["cls_labels"] = args[5]
        return original(*args)

    model.losses = capture
    train_losses(model, batch)
    labels = captured["cls_labels"]
    # P3 grid of the 256x256 canvas is 32x32; image 1 (96x64) keeps 12 rows x 8 cols
    p3 = labels[1, : 32 * 32].view(32, 32)
    assert (p3[:12, :8] >= 0).all()
    assert (p3[12:, :] == -1).all() and (p3[:, 8:] == -1).all()
    assert (labels[0] >= 0).all()


def test_inference_scoring_threshold_and_nms():
    model = tiny_ddod(num_classes=2)
    model.eval()
    anchors = [Boxes(torch.tensor([[0, 0, 20, 20], [0, 0, 20, 20], [50, 50, 70, 70.0]]))]
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    cls = torch.full((3, 2), -10.0)
    cls[0, 0] = logit(0.06)  # kept: 0.06 > 0.05, final score 0.06 * 0.5 = 0.03
    cls[0, 1] = logit(0.5)   # same box, other class: class-aware NMS keeps both
    cls[1, 0] = logit(0.9)   # same box and class as anchor 0 -> suppresses it
    cls[2, 1] = logit(0.04)  # below the threshold: dropped
    deltas = torch.zeros(3, 4)
    quality = torch.zeros(3)  # sigmoid -> 0.5
    result = model.inference_single_image(anchors, [cls], [deltas], [quality], (100, 100))
    got = sorted(zip(result.pred_classes.tolist(), result.scores.tolist()))
    assert got == [(0, pytest.approx(0.45)), (1, pytest.approx(0.25))]

    cls[1, 0] = -10.0  # without the stronger duplicate, the 0.06 pair survives at 0.03
    result = model.inference_single_image(anchors, [cls], [deltas], [quality], (100, 100))
    scores = dict(zip(result.pred_classes.tolist(), result.scores.tolist()))
    assert scores[0] == pytest.approx(0.03)


def test_inference_caps_detections_and_returns_image_space_boxes():
    torch.manual_seed(0)
    model = tiny_ddod(num_classes=3, max_detections_per_image=100, test_score_thresh=0.0)
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 128, 160) * 255, "height": 256, "width": 320}])
    inst = out[0]["instances"]
    assert len(inst) == 100
    assert inst.image_size == (256, 320)
    b = inst.pred_boxes.tensor
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= 320).all() and (b[:, 3] <= 256).all()


def test_amp_bfloat16_losses_finite_and_assignment_in_fp32():
    torch.manual_seed(0)
    model = tiny_ddod()
    dtypes = []
    original = model.cls_assigner.assign

    def record(anchors, n, gt_boxes, gt_classes, **kw):
        dtypes.extend([anchors.dtype, kw["pred_logits"].dtype, kw["pred_boxes"].dtype])
        return original(anchors, n, gt_boxes, gt_classes, **kw)

    model.cls_assigner.assign = record
    batch = [make_input(256, 256, [[10, 10, 90, 100]], [1])]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = train_losses(model, batch)
    assert set(dtypes) == {torch.float32}
    for v in losses.values():
        assert v.dtype == torch.float32 and torch.isfinite(v)
    sum(losses.values()).backward()


def test_degenerate_and_outside_boxes_are_dropped_or_clipped():
    torch.manual_seed(0)
    model = tiny_ddod()
    boxes = [
        [50, 50, 50, 90],      # zero width
        [80, 80, 40, 40],      # inverted
        [300, 300, 400, 400],  # wholly outside the 256x256 image
        [-40, -40, 60, 70],    # partly outside: clipped to (0, 0, 60, 70)
        [float("nan"), 0, 10, 10],
    ]  # fmt: skip
    seen = []
    original = model.cls_assigner.assign
    model.cls_assigner.assign = lambda a, n, g, c, **k: seen.append(g.clone()) or original(a, n, g, c, **k)
    losses = train_losses(model, [make_input(256, 256, boxes, [0, 1, 2, 3, 0])])
    assert seen[0].tolist() == [[0.0, 0.0, 60.0, 70.0]]
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
