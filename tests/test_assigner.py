"""ATSS and DDOD's cost-based ATSS on hand-worked cases (shared/spec/ddod.md §2, §10.4)."""
import math

import pytest
import torch

import ddod  # noqa: F401
from ddod.modeling.assigners import (
    BACKGROUND,
    IGNORE,
    ATSSAssigner,
    CostATSSAssigner,
    aligned_box_iou,
)


def logit(p):
    return math.log(p / (1 - p))


# The reference ATSS fixture: four priors on one level, two GTs.
PRIORS = torch.tensor([[0, 0, 10, 10], [10, 10, 20, 20], [5, 5, 15, 15], [32, 32, 38, 42.0]])
GTS = torch.tensor([[0, 0, 10, 9], [0, 10, 10, 19.0]])
GT_CLASSES = torch.tensor([2, 3])


def test_plain_atss_reference_fixture():
    # GT0: IoUs (0.9, 0, 0.118, 0): threshold mean+std = 0.254+0.434 = 0.688 -> prior 0, whose
    # centre (5, 5) is inside GT0. GT1: IoUs (0, 0, 0.152, 0): threshold 0.038+0.076 = 0.114
    # -> prior 2, but its centre (10, 10) lies on GT1's top edge, so it is rejected.
    result = ATSSAssigner(topk=9)(PRIORS, [4], GTS, GT_CLASSES)
    assert result.matched_gt.tolist() == [0, BACKGROUND, BACKGROUND, BACKGROUND]
    assert result.quality[0].item() == pytest.approx(0.9)


def test_empty_gt_and_empty_anchors():
    empty = ATSSAssigner()(PRIORS, [4], torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert empty.matched_gt.tolist() == [BACKGROUND] * 4
    no_anchors = ATSSAssigner()(torch.zeros(0, 4), [0], GTS, GT_CLASSES)
    assert no_anchors.matched_gt.shape == (0,)


# A single GT and one level of four 16x16 anchors whose centres are inside it. The predicted
# boxes have IoUs (1.0, 0.64, 0.25, 0.0625) with the GT and GT-class probabilities
# (0.3, 0.81, 0.81, 0.81).
GT = torch.tensor([[0.0, 0.0, 40.0, 40.0]])
GT_CLASS = torch.tensor([1])
ANCHORS = torch.tensor(
    [[4, 12, 20, 28], [20, 12, 36, 28], [12, 4, 28, 20], [12, 20, 28, 36.0]]
)
PRED_BOXES = torch.tensor([[0, 0, 40, 40], [0, 0, 32, 32], [0, 0, 20, 20], [0, 0, 10, 10.0]])


def pred_logits(probs, num_classes=3, cls=1):
    logits = torch.full((len(probs), num_classes), -5.0)
    logits[:, cls] = torch.tensor([logit(p) for p in probs])
    return logits


def assign(alpha, probs=(0.3, 0.81, 0.81, 0.81), boxes=PRED_BOXES, anchors=ANCHORS):
    assigner = CostATSSAssigner(alpha=alpha, topk=9)
    return assigner(
        anchors, [len(anchors)], GT, GT_CLASS, pred_logits=pred_logits(probs), pred_boxes=boxes
    )


def test_cost_assignment_cls_and_reg_pick_different_anchors():
    assert torch.allclose(
        aligned_box_iou(PRED_BOXES, GT.expand(4, 4)), torch.tensor([1.0, 0.64, 0.25, 0.0625])
    )
    # alpha = 0.8: costs p^0.2 * IoU^0.8 = (0.786, 0.671, 0.316, 0.104); mean 0.469, std 0.315,
    # threshold 0.784 -> only anchor 0 (the best box, despite its low score).
    cls = assign(0.8)
    assert cls.matched_gt.tolist() == [0, BACKGROUND, BACKGROUND, BACKGROUND]
    assert cls.quality[0].item() == pytest.approx(0.3**0.2, rel=1e-5)
    # alpha = 0.5: costs sqrt(p * IoU) = (0.548, 0.720, 0.450, 0.225); mean 0.486, std 0.207,
    # threshold 0.692 -> only anchor 1 (good box and confident).
    reg = assign(0.5)
    assert reg.matched_gt.tolist() == [BACKGROUND, 0, BACKGROUND, BACKGROUND]
    assert reg.quality[1].item() == pytest.approx(0.72, rel=1e-5)


def test_alpha_one_with_boxes_at_anchors_is_plain_atss():
    torch.manual_seed(0)
    anchors = torch.cat([torch.rand(30, 2) * 60, torch.rand(30, 2) * 60 + 20], dim=1)
    anchors[:, 2:] = anchors[:, :2] + 8 + torch.rand(30, 2) * 30
    gts = torch.tensor([[10, 10, 50, 60.0], [30, 5, 70, 45.0]])
    classes = torch.tensor([0, 2])
    plain = ATSSAssigner(topk=5)(anchors, [12, 10, 8], gts, classes)
    cost = CostATSSAssigner(alpha=1.0, topk=5)(
        anchors, [12, 10, 8], gts, classes, pred_logits=torch.randn(30, 3), pred_boxes=anchors
    )
    assert torch.equal(plain.matched_gt, cost.matched_gt)
    assert (plain.matched_gt >= 0).any()


def test_alpha_zero_depends_only_on_scores():
    # With alpha = 0 the boxes do not matter: the same result with any predicted boxes.
    probs = (0.2, 0.9, 0.3, 0.1)
    a = assign(0.0, probs=probs)
    b = assign(0.0, probs=probs, boxes=PRED_BOXES.flip(0))
    assert torch.equal(a.matched_gt, b.matched_gt)
    # costs = probs: mean 0.375, std 0.359 -> threshold 0.734 -> anchor 1
    assert a.matched_gt.tolist() == [BACKGROUND, 0, BACKGROUND, BACKGROUND]


def test_cost_uses_the_gt_class_score_only():
    assigner = CostATSSAssigner(alpha=0.5)
    logits = pred_logits((0.3, 0.81, 0.81, 0.81))
    quality = lambda lg: assigner.candidate_quality(  # noqa: E731
        ANCHORS, torch.arange(4)[None], GT, GT_CLASS, lg, PRED_BOXES
    )
    base = quality(logits)
    raised_gt_class = logits.clone()
    raised_gt_class[2, 1] += 2.0
    raised_other = logits.clone()
    raised_other[2, 0] += 5.0
    assert quality(raised_gt_class)[0, 2] > base[0, 2]
    assert torch.equal(quality(raised_other), base)


def test_conflict_goes_to_highest_cost_not_highest_iou():
    # One anchor inside two GTs. Its predicted box overlaps GT0 more (IoU 0.5 vs 0.25), but the
    # classifier is far more confident in GT1's class, so with alpha = 0.5 GT1's cost is higher:
    # sqrt(0.05 * 0.5) = 0.158 < sqrt(0.9 * 0.25) = 0.474.
    gts = torch.tensor([[0, 0, 40, 20.0], [0, 0, 40, 40.0]])
    classes = torch.tensor([0, 1])
    anchors = torch.tensor([[12, 2, 28, 18.0]])
    pred = torch.tensor([[0, 0, 40, 10.0]])
    assert torch.allclose(aligned_box_iou(pred.expand(2, 4), gts), torch.tensor([0.5, 0.25]))
    logits = torch.tensor([[logit(0.05), logit(0.9)]])
    # A single candidate per GT: std is 0, the threshold is the cost itself, so it is positive
    # for both GTs and the conflict rule decides.
    result = CostATSSAssigner(alpha=0.5)(anchors, [1], gts, classes, pred_logits=logits, pred_boxes=pred)
    assert result.matched_gt.tolist() == [1]
    assert result.quality[0].item() == pytest.approx(math.sqrt(0.9 * 0.25), rel=1e-5)
    # Plain ATSS (anchor IoU) on the same anchor prefers GT0 (IoU 0.4 vs 0.2).
    plain = ATSSAssigner()(anchors, [1], gts, classes)
    assert plain.matched_gt.tolist() == [0]


def test_anchor_centre_outside_gt_is_never_positive():
    # Anchor 1's centre (44, 20) is outside the GT even though its predicted box is perfect.
    anchors = torch.tensor([[4, 12, 20, 28], [36, 12, 52, 28.0]])
    boxes = torch.tensor([[0, 0, 20, 20], [0, 0, 40, 40.0]])
    result = CostATSSAssigner(alpha=0.5)(
        anchors, [2], GT, GT_CLASS, pred_logits=pred_logits((0.5, 0.99)), pred_boxes=boxes
    )
    assert result.matched_gt[1].item() == BACKGROUND


def test_invalid_anchors_are_ignored_and_never_candidates():
    valid = torch.tensor([True, True, True, False])
    result = CostATSSAssigner(alpha=0.5)(
        ANCHORS, [4], GT, GT_CLASS, valid_mask=valid,
        pred_logits=pred_logits((0.3, 0.81, 0.81, 0.81)), pred_boxes=PRED_BOXES,
    )  # fmt: skip
    # Candidates are anchors 0-2 only: costs (0.548, 0.720, 0.450), mean 0.573, std 0.137,
    # threshold 0.709 -> anchor 1. Anchor 3 (padding) is ignored, not background.
    assert result.matched_gt.tolist() == [BACKGROUND, 0, BACKGROUND, IGNORE]


def test_topk_per_level_by_centre_distance():
    # Two levels; topk=1 keeps, per level, only the anchor nearest the GT centre (20, 20).
    anchors = torch.tensor(
        [[12, 12, 28, 28], [0, 0, 16, 16],  # level 0: centre (20,20) and (8,8)
         [4, 4, 36, 36], [16, 16, 48, 48.0]]  # level 1: centre (20,20) and (32,32)
    )  # fmt: skip
    assigner = ATSSAssigner(topk=1)
    idx, ok = assigner.select_candidates(anchors, [2, 2], GT, None)
    assert idx.tolist() == [[0, 2]]
    assert ok.all()


def test_many_objects_bounded_and_consistent():
    # 1,000 GTs against ~5k anchors: must run, and every positive's GT must contain its centre.
    torch.manual_seed(0)
    xy = torch.rand(1000, 2) * 600
    gts = torch.cat([xy, xy + 10 + torch.rand(1000, 2) * 100], dim=1)
    ys, xs = torch.meshgrid(torch.arange(0, 640, 10.0), torch.arange(0, 800, 10.0), indexing="ij")
    ctr = torch.stack([xs.flatten(), ys.flatten()], dim=1)
    anchors = torch.cat([ctr - 16, ctr + 16], dim=1)
    result = ATSSAssigner()(anchors, [len(anchors)], gts, torch.zeros(1000, dtype=torch.long))
    pos = result.matched_gt >= 0
    assert pos.sum() > 100
    c = ctr[pos]
    g = gts[result.matched_gt[pos]]
    assert ((c > g[:, :2]) & (c < g[:, 2:])).all()
