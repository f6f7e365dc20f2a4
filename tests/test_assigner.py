"""ATSS and DDOD's cost-based ATSS on hand-worked cases (shared/spec/ddod.md §2, §10.4)."""
import functools
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import ddod  # noqa: F401
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from ddod.modeling.anchors import valid_anchor_mask
from ddod.modeling.assigners import (
    BACKGROUND,
    IGNORE,
    ATSSAssigner,
    CostATSSAssigner,
    MaxIoUAssigner,
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


# ------------------------------------------------------------------------------------------------
# The assigner against a brute-force reference; no host-device synchronisation
# ------------------------------------------------------------------------------------------------
def reference_assign(assigner, anchors, per_level, gts, classes, valid, logits=None, boxes=None):
    """ATSS written the slow, obvious way: loops over GTs, levels and anchors, and per anchor
    over the GTs it is positive for. Returns (matched_gt, quality) as lists."""
    num_anchors = len(anchors)
    valid = torch.ones(num_anchors, dtype=torch.bool) if valid is None else valid
    actr = (anchors[:, :2] + anchors[:, 2:]) / 2
    positive = {}  # (gt, anchor) -> quality
    for g in range(len(gts)):
        gx, gy = ((gts[g, :2] + gts[g, 2:]) / 2).tolist()
        cands, start = [], 0
        for n in per_level:
            ranked = sorted(
                (((gx - actr[a, 0].item()) ** 2 + (gy - actr[a, 1].item()) ** 2, a)
                 for a in range(start, start + n) if valid[a])
            )  # fmt: skip
            cands += [a for _, a in ranked[: assigner.topk]]
            start += n
        if not cands:
            continue
        q = assigner.candidate_quality(
            anchors, torch.tensor([cands]), gts[g : g + 1], classes[g : g + 1], logits, boxes
        )[0]
        std = q.std() if len(cands) > 1 else 0.0
        threshold = q.mean() + std
        x0, y0, x1, y1 = gts[g].tolist()
        for a, qa in zip(cands, q.tolist()):
            cx, cy = actr[a].tolist()
            inside = min(cx - x0, cy - y0, x1 - cx, y1 - cy) > assigner.center_eps
            if qa >= threshold and inside:
                positive[g, a] = qa
    matched, quality = [BACKGROUND] * num_anchors, [0.0] * num_anchors
    for a in range(num_anchors):
        for g in range(len(gts)):  # ascending: ties stay with the lowest GT index
            if (g, a) in positive and (matched[a] == BACKGROUND or positive[g, a] > quality[a]):
                matched[a], quality[a] = g, positive[g, a]
        if not valid[a]:
            matched[a] = IGNORE
    return matched, quality


def random_scene(seed, num_anchors=60, num_gt=8, num_duplicates=3):
    """Jittered anchors on three levels and overlapping GTs, some of them exact duplicates (equal
    quality for several GTs: the lowest index must win)."""
    g = torch.Generator().manual_seed(seed)
    ctr = torch.rand(num_anchors, 2, generator=g) * 100
    half = 4 + torch.rand(num_anchors, 1, generator=g) * 20
    anchors = torch.cat([ctr - half, ctr + half], dim=1)
    xy = torch.rand(num_gt, 2, generator=g) * 60
    gts = torch.cat([xy, xy + 20 + torch.rand(num_gt, 2, generator=g) * 50], dim=1)
    dup = torch.randint(0, num_gt, (num_duplicates,), generator=g)
    gts = torch.cat([gts, gts[dup]])
    perm = torch.randperm(len(gts), generator=g)
    gts = gts[perm]
    # a duplicate has its original's class too, so that their costs are equal
    classes = torch.randint(0, 3, (num_gt,), generator=g)
    classes = torch.cat([classes, classes[dup]])[perm]
    logits = torch.randn(num_anchors, 3, generator=g)
    boxes = anchors + torch.randn(num_anchors, 4, generator=g) * 3
    valid = torch.rand(num_anchors, generator=g) > 0.1
    return anchors, [25, 20, 15], gts, classes, valid, logits, boxes


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [None, 0.8, 0.5])
def test_assign_matches_brute_force_reference(seed, alpha):
    anchors, per_level, gts, classes, valid, logits, boxes = random_scene(seed)
    if alpha is None:
        assigner, logits, boxes = ATSSAssigner(topk=5), None, None
    else:
        assigner = CostATSSAssigner(alpha=alpha, topk=5)
    result = assigner(
        anchors, per_level, gts, classes, valid_mask=valid, pred_logits=logits, pred_boxes=boxes
    )
    matched, quality = reference_assign(
        assigner, anchors, per_level, gts, classes, valid, logits, boxes
    )
    assert result.matched_gt.tolist() == matched
    assert torch.allclose(result.quality, torch.tensor(quality), rtol=1e-6, atol=0)
    assert (result.matched_gt >= 0).sum() >= 3


class SyncingOps(TorchDispatchMode):
    """Records the ops that make the host wait for a GPU: data-dependent output sizes, reading a
    value, and tensors made from host data (a blocking copy unless pinned and non-blocking)."""

    SYNCING = {"nonzero", "_local_scalar_dense", "masked_select", "unique", "_unique2", "item"}

    def __init__(self):
        super().__init__()
        self.found, self.host_tables = [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in self.SYNCING:
            self.found.append(name)
        if name in ("index", "index_put", "index_put_"):
            if any(t is not None and t.dtype == torch.bool for t in args[1]):
                self.found.append(f"{name} with a bool mask")
        self.host_tables += name == "lift_fresh"
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("grid", [False, True])
def test_assign_needs_no_host_sync(grid):
    anchors, per_level, grid_sizes = detectron2_anchors([(16, 24), (8, 12)], [8, 16])
    valid = valid_anchor_mask(grid_sizes, [8, 16], 1, [(100, 150)], 32)[0]
    gts = torch.tensor([[10, 10, 60, 50], [30, 20, 90, 120], [0, 0, 5, 5.0]])
    classes = torch.tensor([0, 1, 1])
    logits, boxes = torch.randn(len(anchors), 2), anchors + 1
    assigner = CostATSSAssigner(alpha=0.5)
    with SyncingOps() as mode:
        result = assigner(
            anchors, per_level, gts, classes, valid_mask=valid, pred_logits=logits,
            pred_boxes=boxes, grid_sizes=grid_sizes if grid else None,
        )  # fmt: skip
    assert mode.found == []
    # the grid path's integer tables (level sizes, rank pairs) go in one asynchronous copy
    assert mode.host_tables == int(grid)
    assert (result.matched_gt >= 0).any() and (result.matched_gt == IGNORE).any()


# ------------------------------------------------------------------------------------------------
# Candidate selection on the anchor grid (grid_sizes) against the dense path and brute force
# ------------------------------------------------------------------------------------------------
def detectron2_anchors(grid_sizes, strides, offset=0.0, num_cell_anchors=1):
    """DDOD-like anchors (8 x stride squares; optionally a second aspect ratio) on given grids."""
    ratios = [1.0, 2.0][:num_cell_anchors]
    generator = DefaultAnchorGenerator(
        sizes=[[8 * s] for s in strides], aspect_ratios=ratios, strides=strides, offset=offset
    )
    per_level = generator([torch.empty(1, 1, h, w) for h, w in grid_sizes])
    return torch.cat([b.tensor for b in per_level]), [len(b) for b in per_level], grid_sizes


def p3_p7(canvas_h, canvas_w):
    strides = [8, 16, 32, 64, 128]
    return [(math.ceil(canvas_h / s), math.ceil(canvas_w / s)) for s in strides], strides


def hard_gts(seed, image_h, image_w, num=120):
    """GTs anywhere: ordinary, tiny, huge, hugging the borders and with centres outside."""
    g = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    n = num // 6
    ordinary_xy = u(n, 2) * torch.tensor([image_w, image_h])
    ordinary = torch.cat([ordinary_xy, ordinary_xy + 10 + u(n, 2) * 200], 1)
    tiny_xy = u(n, 2) * torch.tensor([image_w, image_h])
    tiny = torch.cat([tiny_xy, tiny_xy + 0.5 + u(n, 2) * 3], 1)
    huge = torch.cat([u(n, 2) * 20, torch.tensor([image_w, image_h]) - u(n, 2) * 20], 1)
    # centres within a cell of each border
    bx = torch.where(u(n) < 0.5, u(n) * 12 - 4, image_w - u(n) * 12 + 4)
    by = u(n) * image_h
    border = torch.stack([bx - 3, by - 5, bx + 3, by + 5], 1)
    corner = torch.stack([image_w + u(n) * 10, image_h + u(n) * 10], 1)
    corner = torch.cat([corner - 6, corner + 6], 1)
    far = torch.cat([u(n, 2) * 4000 - 1500, torch.zeros(n, 2)], 1)
    far[:, 2:] = far[:, :2] + 1 + u(n, 2) * 50
    return torch.cat([ordinary, tiny, huge, border, corner, far])


def candidate_distances(anchors, gts, cand_idx):
    """(M, C) squared centre distances of the candidates, computed like the assigner does."""
    a = (anchors[cand_idx][..., :2] + anchors[cand_idx][..., 2:]) / 2
    g = ((gts[:, :2] + gts[:, 2:]) / 2)[:, None]
    return (g[..., 0] - a[..., 0]) ** 2 + (g[..., 1] - a[..., 1]) ** 2


def assert_same_candidates(anchors, per_level, gts, topk, grid_sizes, valid):
    """Dense and grid selections pick anchors at the same distances (the same sets unless
    distances tie exactly), with the same cand_ok, level by level."""
    assigner = ATSSAssigner(topk=topk)
    dense = assigner.select_candidates(anchors, per_level, gts, valid)
    grid = assigner.select_candidates(anchors, per_level, gts, valid, grid_sizes=grid_sizes)
    assert dense[0].shape == grid[0].shape == (len(gts), assigner.num_candidates(per_level))
    assert torch.equal(dense[1], grid[1])
    d_dense = candidate_distances(anchors, gts, dense[0]).masked_fill(~dense[1], -1)
    d_grid = candidate_distances(anchors, gts, grid[0]).masked_fill(~grid[1], -1)
    col = 0
    for n in per_level:
        c = min(topk, n)
        level_dense, level_grid = d_dense[:, col : col + c], d_grid[:, col : col + c]
        assert torch.equal(level_dense.sort(1)[0], level_grid.sort(1)[0])
        col += c
    if valid is not None:
        assert valid[grid[0][grid[1]]].all()
    return dense, grid


def level_of(index, per_level):
    starts = torch.tensor([0] + per_level).cumsum(0)
    return torch.searchsorted(starts, index, right=True) - 1


CASES = [
    # (canvas (H, W) of the batch, image size), as DDOD pads batches to 128 and images to 32
    ((384, 512), (320, 512)),
    ((384, 512), (200, 300)),
    ((896, 1408), (800, 1333)),
    ((896, 1408), (512, 683)),
]


@pytest.mark.parametrize("canvas,image", CASES)
@pytest.mark.parametrize("topk", [9, 4, 15])
def test_grid_candidates_match_dense(canvas, image, topk):
    grid_sizes, strides = p3_p7(*canvas)
    anchors, per_level, _ = detectron2_anchors(grid_sizes, strides)
    valid = valid_anchor_mask(grid_sizes, strides, 1, [image], 32)[0]
    gts = hard_gts(topk, *image)
    dense, grid = assert_same_candidates(anchors, per_level, gts, topk, grid_sizes, valid)
    # candidates stay on their level
    col_level = torch.cat([torch.full((min(topk, n),), i) for i, n in enumerate(per_level)])
    assert torch.equal(level_of(grid[0], per_level), col_level.expand_as(grid[0]))
    # and give the same assignment
    g = torch.Generator().manual_seed(topk)
    logits = torch.randn(len(anchors), 5, generator=g) - 2
    boxes = anchors + torch.randn(len(anchors), 4, generator=g) * 4
    classes = torch.randint(0, 5, (len(gts),), generator=g)
    assigner = CostATSSAssigner(alpha=0.8, topk=topk)
    kwargs = dict(valid_mask=valid, pred_logits=logits, pred_boxes=boxes)
    a = assigner(anchors, per_level, gts, classes, **kwargs)
    b = assigner(anchors, per_level, gts, classes, grid_sizes=grid_sizes, **kwargs)
    assert torch.equal(a.matched_gt, b.matched_gt) and torch.equal(a.quality, b.quality)
    assert (a.matched_gt >= 0).sum() > 50


def test_grid_candidates_with_tied_distances():
    # GT centres on anchor centres and on midpoints between them: many exactly equal distances.
    grid_sizes, strides = p3_p7(384, 512)
    anchors, per_level, _ = detectron2_anchors(grid_sizes, strides)
    valid = valid_anchor_mask(grid_sizes, strides, 1, [(300, 416)], 32)[0]
    ctr = torch.cartesian_prod(torch.arange(-16, 480, 12.0), torch.arange(-16, 380, 20.0))
    gts = torch.cat([ctr - 5, ctr + 5], 1)
    for topk in (9, 6, 1):
        assert_same_candidates(anchors, per_level, gts, topk, grid_sizes, valid)


def test_grid_candidates_brute_force_on_irregular_grids():
    # Any product grid: origin, steps (different in x and y) and valid rectangle at random,
    # levels narrower than topk, points inside, near and far outside.
    g = torch.Generator().manual_seed(0)
    randint = functools.partial(torch.randint, generator=g)
    for trial in range(30):
        num_levels = int(randint(1, 4, (1,)))
        grid_sizes = [tuple(randint(1, 14, (2,)).tolist()) for _ in range(num_levels)]
        levels, valid = [], []
        for h, w in grid_sizes:
            step = 1 + torch.rand(2, generator=g) * 30
            origin = torch.randn(2, generator=g) * 40
            ys, xs = torch.meshgrid(
                torch.arange(h) * step[1], torch.arange(w) * step[0], indexing="ij"
            )
            ctr = torch.stack([xs, ys], -1).reshape(-1, 2) + origin
            levels.append(torch.cat([ctr - 8, ctr + 8], 1))
            vh, vw = randint(0, h + 1, (1,)), randint(0, w + 1, (1,))  # valid rows, columns
            valid.append(((torch.arange(h)[:, None] < vh) & (torch.arange(w) < vw)).flatten())
        anchors, valid = torch.cat(levels), torch.cat(valid)
        per_level = [h * w for h, w in grid_sizes]
        xy = torch.randn(40, 2, generator=g) * 200
        gts = torch.cat([xy - 3, xy + 3], 1)
        topk = int(randint(1, 12, (1,)))
        for mask in (valid, None):
            _, (idx, ok) = assert_same_candidates(anchors, per_level, gts, topk, grid_sizes, mask)
            # brute force: the k smallest distances to valid anchors of each level
            m = torch.ones(len(anchors), dtype=torch.bool) if mask is None else mask
            every = torch.arange(len(anchors)).expand(len(gts), -1)
            d_all = candidate_distances(anchors, gts, every)
            d_got = candidate_distances(anchors, gts, idx).masked_fill(~ok, float("inf"))
            start = col = 0
            for n in per_level:
                c = min(topk, n)
                want = d_all[:, start : start + n].masked_fill(~m[start : start + n], float("inf"))
                want = want.sort(1)[0][:, :c]
                assert torch.equal(d_got[:, col : col + c].sort(1)[0], want), trial
                start, col = start + n, col + c


def test_grid_sizes_ignored_with_several_anchors_per_location():
    grid_sizes, strides = p3_p7(256, 384)
    anchors, per_level, _ = detectron2_anchors(grid_sizes, strides, num_cell_anchors=2)
    gts = hard_gts(1, 256, 384, num=30)
    assigner = ATSSAssigner()
    a = assigner.select_candidates(anchors, per_level, gts, None)
    b = assigner.select_candidates(anchors, per_level, gts, None, grid_sizes=grid_sizes)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError):
        assigner.select_candidates(anchors, per_level, gts, None, grid_sizes=grid_sizes[:2])


def test_grid_path_without_gt_and_with_an_invalid_level():
    grid_sizes, strides = p3_p7(256, 384)
    anchors, per_level, _ = detectron2_anchors(grid_sizes, strides)
    valid = valid_anchor_mask(grid_sizes, strides, 1, [(256, 384)], 32)[0]
    valid[-per_level[-1]:] = False  # a level without a valid anchor: no candidate there
    assigner = ATSSAssigner()
    no_gt = torch.zeros(0, 4)
    idx, ok = assigner.select_candidates(anchors, per_level, no_gt, valid, grid_sizes=grid_sizes)
    assert idx.shape == ok.shape == (0, assigner.num_candidates(per_level))
    gts = hard_gts(2, 256, 384, num=30)
    _, (idx, ok) = assert_same_candidates(anchors, per_level, gts, 9, grid_sizes, valid)
    last = per_level[-1]  # P7 is 2 x 3 here: fewer anchors than topk
    assert not ok[:, -last:].any() and ok[:, :-last].all()
    empty = assigner(anchors, per_level, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long),
                     valid_mask=valid, grid_sizes=grid_sizes)  # fmt: skip
    assert set(empty.matched_gt.tolist()) == {BACKGROUND, IGNORE}


# ------------------------------------------------------------------------------------------------
# One candidate selection shared by DDOD's two assigners
# ------------------------------------------------------------------------------------------------
def test_shared_candidates_give_the_same_assignment():
    grid_sizes, strides = p3_p7(384, 512)
    anchors, per_level, _ = detectron2_anchors(grid_sizes, strides)
    valid = valid_anchor_mask(grid_sizes, strides, 1, [(320, 480)], 32)[0]
    gts = hard_gts(3, 320, 480, num=60)
    g = torch.Generator().manual_seed(3)
    classes = torch.randint(0, 4, (len(gts),), generator=g)
    kwargs = dict(
        valid_mask=valid,
        pred_logits=torch.randn(len(anchors), 4, generator=g),
        pred_boxes=anchors + torch.randn(len(anchors), 4, generator=g) * 4,
    )
    cls_a, reg_a = CostATSSAssigner(alpha=0.8), CostATSSAssigner(alpha=0.5)
    assert cls_a.same_candidates_as(reg_a) and reg_a.same_candidates_as(cls_a)
    for sizes in (None, grid_sizes):
        candidates = cls_a.select_candidates(anchors, per_level, gts, valid, grid_sizes=sizes)
        for assigner in (cls_a, reg_a):
            own = assigner(anchors, per_level, gts, classes, grid_sizes=sizes, **kwargs)
            shared = assigner(anchors, per_level, gts, classes, candidates=candidates, **kwargs)
            assert torch.equal(own.matched_gt, shared.matched_gt)
            assert torch.equal(own.quality, shared.quality)
            assert (own.matched_gt >= 0).any()


def test_which_assigners_share_candidates():
    assert ATSSAssigner(topk=9).same_candidates_as(CostATSSAssigner(alpha=0.5, topk=9))
    assert CostATSSAssigner(alpha=0.8, center_eps=0.5).same_candidates_as(ATSSAssigner())
    assert not ATSSAssigner(topk=9).same_candidates_as(ATSSAssigner(topk=5))
    assert not ATSSAssigner().same_candidates_as(MaxIoUAssigner())

    class Other(ATSSAssigner):
        def select_candidates(self, *args, **kwargs):
            return super().select_candidates(*args, **kwargs)

    assert not ATSSAssigner().same_candidates_as(Other())


def test_candidates_and_grid_sizes_arguments_are_checked():
    assigner = ATSSAssigner(topk=9)
    idx, ok = assigner.select_candidates(PRIORS, [4], GTS)
    with pytest.raises(ValueError, match="candidates"):
        assigner(PRIORS, [4], GTS, GT_CLASSES, candidates=(idx[:1], ok[:1]))
    with pytest.raises(ValueError, match="does not take"):
        MaxIoUAssigner()(PRIORS, [4], GTS, GT_CLASSES, candidates=(idx, ok))
    # grid_sizes is a hint: assigners that cannot use it ignore it
    plain = MaxIoUAssigner()(PRIORS, [4], GTS, GT_CLASSES)
    hinted = MaxIoUAssigner()(PRIORS, [4], GTS, GT_CLASSES, grid_sizes=[(2, 2)])
    assert torch.equal(plain.matched_gt, hinted.matched_gt)
