"""MOD's parts: the batched GMM against scikit-learn, APS's selection on hand-set losses (both
score modes, N_l = min(9, n), the level choice), the whole batched APS against a plain per-GT loop
written from the reference's steps (overlapping objects), empty and tiny objects, RFA's modulated
deformable conv, the GIoU quality target and the sqrt test score (shared/spec/related_methods.md
§3.10)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d, sigmoid_focal_loss

import ddod  # noqa: F401
from detectron2.config import LazyConfig, instantiate
from detectron2.structures import Boxes
from detectron2.utils.events import EventStorage

from ddod.modeling import APSAssigner
from ddod.modeling.assigners.gmm import fit_gmm2_1d
from ddod.modeling.layers.tower import (
    DeformConvNormAct,
    build_conv_tower,
    modulated_deform_conv2d_cpu,
)
from ddod.modeling.losses import giou_loss_per_box

from .common import ROOT, make_input

sklearn_mixture = pytest.importorskip("sklearn.mixture")


def sklearn_fit(x):
    """The reference's GMM on one set (1-D numpy array)."""
    gm = sklearn_mixture.GaussianMixture(
        n_components=2,
        weights_init=[0.5, 0.5],
        means_init=np.array([x.min(), x.max()]).reshape(2, 1),
        precisions_init=np.array([0.1, 0.1]).reshape(2, 1, 1),
    )
    gm.fit(x.reshape(-1, 1))
    return gm


def reference_cut(x):
    """The reference's ``gmm_clustter_2`` on one set: component 0, cut at its most likely member."""
    gm = sklearn_fit(x)
    comp0 = gm.predict(x.reshape(-1, 1)) == 0
    if comp0.any():
        ll = gm.score_samples(x.reshape(-1, 1))
        best = np.nonzero(comp0)[0][np.argmax(ll[comp0])]
        comp0 &= x <= x[best]
    return comp0


# ------------------------------------------------------------------------------------------------
# batched GMM
# ------------------------------------------------------------------------------------------------
def test_batched_gmm_matches_sklearn():
    rng = np.random.default_rng(0)
    sets = []
    for _ in range(40):
        n = int(rng.integers(2, 19))
        if rng.random() < 0.5:  # two clusters
            k = int(rng.integers(1, n))
            x = np.concatenate([rng.normal(2, 0.3, k), rng.normal(12, 2.0, n - k)])
        else:
            x = rng.gamma(2.0, 3.0, n)
        sets.append(x)
    sets += [np.full(5, 3.0), np.array([1.0, 7.0]), np.array([4.0, 4.0]), np.full(18, 0.5)]
    C = max(len(s) for s in sets)
    x = torch.zeros(len(sets), C, dtype=torch.float64)
    mask = torch.zeros(len(sets), C, dtype=torch.bool)
    for i, s in enumerate(sets):
        x[i, : len(s)], mask[i, : len(s)] = torch.from_numpy(s), True
    fit = fit_gmm2_1d(x, mask)
    pred, ll = fit.predict(x), fit.score_samples(x)
    for i, s in enumerate(sets):
        gm = sklearn_fit(s)
        n = len(s)
        np.testing.assert_allclose(fit.means[i].numpy(), gm.means_.ravel(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            fit.variances[i].numpy(), gm.covariances_.ravel(), rtol=1e-4, atol=1e-8
        )
        np.testing.assert_allclose(fit.weights[i].numpy(), gm.weights_, rtol=1e-5, atol=1e-8)
        assert pred[i, :n].tolist() == gm.predict(s.reshape(-1, 1)).tolist(), i
        np.testing.assert_allclose(
            ll[i, :n].numpy(), gm.score_samples(s.reshape(-1, 1)), rtol=1e-5, atol=1e-5
        )


def test_batched_gmm_degenerate_sets():
    # all equal: both components on the value, every point component 0 (ties go to 0)
    x = torch.tensor([[2.0, 2.0, 2.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 5.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    fit = fit_gmm2_1d(x, mask)
    assert torch.isfinite(fit.means).all() and (fit.variances > 0).all()
    assert fit.predict(x.double())[0, :3].tolist() == [0, 0, 0]
    # two values: one per component
    assert fit.predict(x.double())[2, :2].tolist() == [0, 1]
    assert fit.means[2].tolist() == pytest.approx([1.0, 5.0], abs=1e-6)


# ------------------------------------------------------------------------------------------------
# APS selection on hand-set losses
# ------------------------------------------------------------------------------------------------
def _select(aps, lcls, lreg, cand=None, levels=None):
    lcls = torch.tensor(lcls, dtype=torch.float32)[None]
    lreg = torch.tensor(lreg, dtype=torch.float32)[None]
    cand = torch.ones_like(lcls, dtype=torch.bool) if cand is None else torch.tensor(cand)[None]
    levels = [lcls.shape[1]] if levels is None else levels
    sel, pts, score = aps.select_positives(lcls, lreg, cand, levels)
    # the chosen points, and the points and scores of every real candidate
    mask = score[0] > 0
    return sorted(pts[0][sel[0]].tolist()), pts[0][mask], score[0][mask]


def test_obvious_split_code_mode():
    # one level: S = L_cls + L_reg = 0.10, 0.12, 0.11 | 2.0, 2.1, 2.2; the GMM on 10 S splits
    # {1.0, 1.2, 1.1} from {20, 21, 22}; component 0's most likely member is 1.1 (its mean), so
    # the cut keeps 1.0 and 1.1: points 0 and 2.
    aps = APSAssigner()
    total = [0.10, 0.12, 0.11, 2.0, 2.1, 2.2]
    chosen, pts, score = _select(aps, [t / 2 for t in total], [t / 2 for t in total])
    assert chosen == [0, 2]
    assert reference_cut(10 * np.array(total)).nonzero()[0].tolist() == [0, 2]


def test_obvious_split_paper_mode():
    # L_cls = L_reg: S_m = 0.5 everywhere and S_u = softmax(L): three equal low scores and three
    # equal high ones. Component 0 is the low three, all equal to its best member: all kept.
    aps = APSAssigner(score_mode="paper")
    low, high = 0.1, 3.0
    losses = [low, low, low, high, high, high]
    chosen, _, score = _select(aps, losses, losses)
    assert chosen == [0, 1, 2]
    z = 3 * math.exp(low) + 3 * math.exp(high)
    assert score[0].item() == pytest.approx(math.sqrt(0.5 * math.exp(low) / z), rel=1e-5)
    # the code's score on the same losses ranks the same way but is not the softmax one
    _, _, code_score = _select(APSAssigner(), losses, losses)
    assert code_score[0].item() == pytest.approx(2 * low, rel=1e-6)  # one level: L, no root


def test_topk_is_min_of_9_and_n_and_two_best_levels():
    aps = APSAssigner(spatial_selection=False)
    # level 0: 5 points (all candidates, mean 1.0); level 1: 20 points (mean of best 9 = 0.5);
    # level 2: 12 points (mean of best 9 = 2.0): levels 1 and 0 are kept, 9 + 5 candidates
    l0 = [1.0] * 5
    l1 = [0.5] * 9 + [0.9] * 11
    l2 = [2.0] * 12
    losses = l0 + l1 + l2
    zeros = [0.0] * len(losses)
    chosen, _, _ = _select(aps, losses, zeros, levels=[5, 20, 12])
    assert chosen == list(range(5)) + list(range(5, 14))
    # a level with fewer candidates than points: N_l = min(9, candidates)
    cand = [True] * 3 + [False] * 2 + [True] * 20 + [False] * 12
    chosen, _, _ = _select(aps, losses, zeros, cand=cand, levels=[5, 20, 12])
    assert chosen == [0, 1, 2] + list(range(5, 14))
    # one level only (num_levels=1) and every level (None)
    chosen, _, _ = _select(APSAssigner(spatial_selection=False, num_levels=1), losses, zeros,
                           levels=[5, 20, 12])  # fmt: skip
    assert chosen == list(range(5, 14))
    chosen, _, _ = _select(APSAssigner(spatial_selection=False, num_levels=None), losses, zeros,
                           levels=[5, 20, 12])  # fmt: skip
    assert len(chosen) == 5 + 9 + 9


def test_code_score_with_one_and_two_levels():
    aps = APSAssigner(spatial_selection=False)
    lc, lr = [0.3, 0.8, 0.2, 0.6], [0.5, 0.1, 0.4, 0.2]
    # two levels of two points: S = sqrt(sigmoid(|lc - lr|) (lc + lr))
    _, pts, score = _select(aps, lc, lr, levels=[2, 2])
    for p, s in zip(pts.tolist(), score.tolist()):
        expected = math.sqrt((1 / (1 + math.exp(-abs(lc[p] - lr[p])))) * (lc[p] + lr[p]))
        assert s == pytest.approx(expected, rel=1e-5)
    # only one level has candidates: S = lc + lr, un-rooted
    _, pts, score = _select(aps, lc, lr, cand=[True, True, False, False], levels=[2, 2])
    got = {p: s for p, s in zip(pts.tolist(), score.tolist()) if p < 2}
    assert got == pytest.approx({0: 0.8, 1: 0.9}, rel=1e-6)


def test_fallback_only_changes_empty_splits():
    # with a normal split the fallback changes nothing
    total = [0.10, 0.12, 0.11, 2.0, 2.1, 2.2]
    half = [t / 2 for t in total]
    assert _select(APSAssigner(fallback=True), half, half)[0] == [0, 2]
    # a single candidate is positive without a GMM, in both settings
    assert _select(APSAssigner(), [0.4, 9.0], [0.1, 9.0], cand=[False, True])[0] == [1]


# ------------------------------------------------------------------------------------------------
# whole APS: batched waves against a per-GT loop written from the reference's steps
# ------------------------------------------------------------------------------------------------
def reference_aps(points, points_per_level, gts, classes, logits, boxes):
    """MOD's loss.py APS for one image, as a plain loop (related_methods.md §3.4), with the
    reference's scikit-learn GMM: (P,) matched GT index or -1."""
    P, M = len(points), len(gts)
    matched = [-1] * P
    if M == 0:
        return matched
    area = (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])
    order = sorted(range(M), key=lambda m: (area[m].item(), m))
    rank = {m: r for r, m in enumerate(order)}
    x, y = points[:, 0], points[:, 1]
    inside = (x > gts[:, None, 0]) & (y > gts[:, None, 1]) & (x < gts[:, None, 2]) & (y < gts[:, None, 3])
    slots = []
    for p in range(P):
        enc = sorted([m for m in range(M) if inside[m, p]], key=lambda m: rank[m])
        slots.append(enc[:2])
    K = logits.shape[1]

    def losses(p, k):
        s = slots[p]
        target = torch.zeros(K)
        target[classes[s[0]]] = 1
        if k == 2:
            target[classes[s[1]]] = 1
        lc = sigmoid_focal_loss(logits[p], target, reduction="none").sum().item()
        lr = giou_loss_per_box(boxes[p : p + 1], gts[s[k - 1]][None]).item()
        return lc, lr

    active = [1 if slots[p] else 0 for p in range(P)]
    starts = np.cumsum([0] + points_per_level)
    for g in order:
        per_level = []
        for lv in range(len(points_per_level)):
            cands = [p for p in range(starts[lv], starts[lv + 1]) if inside[g, p] and active[p]]
            if not cands:
                continue
            vals = sorted(((*losses(p, active[p]), p) for p in cands), key=lambda t: t[0] + t[1])
            top = vals[: min(9, len(vals))]
            per_level.append((np.mean([a + b for a, b, _ in top]), top))
        chosen = []
        if per_level:
            per_level.sort(key=lambda t: t[0])
            two = len(per_level) >= 2
            cand = [c for _, top in per_level[:2] for c in top]
            lc = np.array([c[0] for c in cand])
            lr = np.array([c[1] for c in cand])
            if two:
                s = np.sqrt(1 / (1 + np.exp(-np.abs(lc - lr))) * (lc + lr))
            else:
                s = lc + lr
            keep = [True] if len(cand) == 1 else reference_cut(10 * s)
            chosen = [c[2] for c, k in zip(cand, keep) if k]
        for p in range(P):
            if inside[g, p] and active[p] == 1:
                active[p] = 2 if len(slots[p]) == 2 else 0
            elif inside[g, p] and active[p] == 2:
                active[p] = 0
        for p in chosen:
            matched[p] = g
            active[p] = 0
    return matched


def _grid(sizes, strides):
    pts, counts = [], []
    for (h, w), s in zip(sizes, strides):
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        pts.append(torch.stack([xs.flatten(), ys.flatten()], 1).float() * s + s / 2)
        counts.append(h * w)
    pts = torch.cat(pts)
    return pts, counts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_aps_matches_per_gt_loop_with_overlapping_objects(seed):
    g = torch.Generator().manual_seed(seed)
    points, counts = _grid([(8, 8), (4, 4), (2, 2)], [8, 16, 32])
    anchors = torch.cat([points - 4, points + 4], 1)
    K = 3
    # nested and overlapping objects: a big one, one inside it, one inside that, a partial overlap
    gts = [
        torch.tensor([[2.0, 3.0, 60.0, 58.0], [10.0, 12.0, 40.0, 44.0], [14.0, 15.0, 30.0, 33.0],
                      [35.0, 30.0, 63.0, 62.0]]),  # fmt: skip
        torch.tensor([[5.0, 5.0, 50.0, 30.0], [20.0, 8.0, 62.0, 60.0]]),
    ]
    classes = [torch.tensor([0, 1, 2, 1]), torch.tensor([2, 2])]
    N, R = 2, len(points)
    logits = torch.randn(N, R, K, generator=g) * 2
    ctr = points[None].expand(N, R, 2)
    wh = torch.rand(N, R, 2, generator=g) * 40 + 2
    boxes = torch.cat([ctr - wh / 2, ctr + wh / 2], -1)
    out = APSAssigner().assign_batch(
        anchors, counts, gts, classes, pred_logits=logits, pred_boxes=boxes
    )
    for i in range(N):
        expected = reference_aps(points, counts, gts[i], classes[i], logits[i], boxes[i])
        assert out[i].matched_gt.tolist() == expected
        # a point of a nested object goes to at most one object, and only to an enclosing one
        m = out[i].matched_gt
        pos = m >= 0
        b = gts[i][m[pos]]
        p = points[pos]
        assert ((p > b[:, :2]) & (p < b[:, 2:])).all()
    # one image at a time (the per-image interface) gives the same
    single = APSAssigner()(anchors, counts, gts[1], classes[1], pred_logits=logits[1],
                           pred_boxes=boxes[1])  # fmt: skip
    assert torch.equal(single.matched_gt, out[1].matched_gt)


def test_smaller_object_keeps_its_points():
    # two nested objects with identical predictions everywhere: the small one is processed first,
    # and none of its positives reappears as a positive of the big one
    points, counts = _grid([(8, 8)], [8])
    anchors = torch.cat([points - 4, points + 4], 1)
    gts = torch.tensor([[0.5, 0.5, 63.5, 63.5], [16.5, 16.5, 40.5, 40.5]])
    logits = torch.zeros(1, 64, 2)
    boxes = torch.tensor([16.5, 16.5, 40.5, 40.5]).expand(1, 64, 4)  # perfect for the small one
    out = APSAssigner().assign_batch(anchors, counts, [gts], [torch.tensor([0, 1])],
                                     pred_logits=logits, pred_boxes=boxes)[0]  # fmt: skip
    small = (out.matched_gt == 1).nonzero().flatten()
    assert len(small) > 0
    assert (out.matched_gt[small] == 1).all()
    inside_small = ((points > 16.5) & (points < 40.5)).all(1)
    assert inside_small[small].all()


def test_empty_image_and_tiny_object():
    points, counts = _grid([(4, 4), (2, 2)], [8, 16])
    anchors = torch.cat([points - 4, points + 4], 1)
    R = len(points)
    logits, boxes = torch.zeros(2, R, 2), anchors[None].expand(2, R, 4).clone()
    valid = torch.ones(2, R, dtype=torch.bool)
    valid[1, -1] = False
    tiny = torch.tensor([[5.0, 5.0, 7.0, 7.0]])  # between the points at 4 and 12: none inside
    for fallback in (False, True):
        out = APSAssigner(fallback=fallback).assign_batch(
            anchors, counts, [torch.zeros(0, 4), tiny], [torch.zeros(0, dtype=torch.int64),
            torch.tensor([1])], valid_mask=valid, pred_logits=logits, pred_boxes=boxes,
        )  # fmt: skip
        assert (out[0].matched_gt == -1).all()
        assert (out[1].matched_gt[:-1] == -1).all() and out[1].matched_gt[-1] == -2


def test_anchor_based_keeps_lowest_loss_anchor():
    # 2 anchors per point: the positive is the anchor whose box fits the object
    points, counts = _grid([(4, 4)], [8])
    anchors = torch.cat([points - 4, points + 4], 1).repeat_interleave(2, 0)
    gt = torch.tensor([[1.0, 1.0, 31.0, 31.0]])
    boxes = torch.cat([anchors[0::2] * 0 + torch.tensor([40.0, 40, 41, 41]),
                       gt.expand(16, 4)], 1).view(1, 32, 4)  # fmt: skip
    out = APSAssigner(num_anchors_per_point=2, spatial_selection=False).assign_batch(
        anchors, [32], [gt], [torch.tensor([0])], pred_logits=torch.zeros(1, 32, 1),
        pred_boxes=boxes,
    )[0].matched_gt  # fmt: skip
    pos = (out == 0).nonzero().flatten()
    assert len(pos) == 9 and (pos % 2 == 1).all()


def test_aps_rejects_bad_options():
    with pytest.raises(ValueError, match="score_mode"):
        APSAssigner(score_mode="mean")
    with pytest.raises(ValueError, match="num_levels"):
        APSAssigner(num_levels=0)


# ------------------------------------------------------------------------------------------------
# RFA, GIoU quality target, sqrt score
# ------------------------------------------------------------------------------------------------
def test_rfa_modulated_dcn_starts_as_half_a_conv_and_matches_torchvision():
    torch.manual_seed(0)
    block = DeformConvNormAct(4, 6, norm="", modulated=True, bias=True)
    assert block.conv_offset.out_channels == 27 and block.conv.bias is not None
    x = torch.randn(2, 4, 7, 9)
    # zero-initialised offsets and mask logits: offsets 0, mask 0.5 -> conv with half the weight
    expected = torch.relu(F.conv2d(x, 0.5 * block.conv.weight, block.conv.bias, padding=1))
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    # with learnt offsets and mask: torchvision's modulated op with (18 offsets, 9 mask logits)
    torch.nn.init.normal_(block.conv_offset.weight, std=0.3)
    out = block.conv_offset(x)
    ref = deform_conv2d(x, out[:, :18], block.conv.weight, block.conv.bias, padding=1,
                        mask=out[:, 18:].sigmoid())  # fmt: skip
    torch.testing.assert_close(block(x), torch.relu(ref))
    # GN after a biased DCN (MOD), and the default (DDOD) has no bias before the norm
    assert DeformConvNormAct(4, 32, norm="GN", modulated=True, bias=True).conv.bias is not None
    assert DeformConvNormAct(4, 32, norm="GN").conv.bias is None


@pytest.mark.parametrize("size", [(5, 7), (1, 3), (4, 1)])
def test_cpu_modulated_deform_conv_matches_torchvision(size):
    # values and every gradient, in float64, with offsets reaching outside the image
    g = torch.Generator().manual_seed(sum(size))
    h, w = size
    kw = dict(dtype=torch.float64)
    x = torch.randn(2, 3, h, w, generator=g, **kw).requires_grad_()
    off = (torch.randn(2, 18, h, w, generator=g, **kw) * 1.5).requires_grad_()
    mask = torch.rand(2, 9, h, w, generator=g, **kw).requires_grad_()
    weight = torch.randn(4, 3, 3, 3, generator=g, **kw).requires_grad_()
    bias = torch.randn(4, generator=g, **kw).requires_grad_()
    ref = deform_conv2d(x, off, weight, bias, padding=1, mask=mask)
    ours = modulated_deform_conv2d_cpu(x, off, mask, weight, bias, 1)
    torch.testing.assert_close(ours, ref)
    inputs = [x, off, mask, weight, bias]
    for a, b in zip(torch.autograd.grad((ref**2).sum(), inputs),
                    torch.autograd.grad((ours**2).sum(), inputs)):  # fmt: skip
        torch.testing.assert_close(b, a)


def test_tower_negative_deform_index_is_the_last_conv():
    tower = build_conv_tower(8, 8, 4, norm="", deform_index=-1, deform_modulated=True)
    kinds = [type(b).__name__ for b in tower]
    assert kinds == ["ConvNormAct"] * 3 + ["DeformConvNormAct"] and tower[3].modulated
    with pytest.raises(ValueError, match="deform_index=-5"):
        build_conv_tower(8, 8, 4, deform_index=-5)


def _digits_model(name):
    cfg = LazyConfig.load(f"{ROOT}/configs/quickstart/{name}_digits_cpu.py")
    return instantiate(cfg.model)


def test_mod_model_trains_and_scores_with_sqrt():
    torch.manual_seed(0)
    model = _digits_model("mod")
    assert isinstance(model.cls_assigner, APSAssigner)
    assert model.head.cls_tower[-1].modulated and model.head.reg_tower[-1].modulated
    model.train()
    data = [make_input(96, 128, [[10, 12, 60, 70], [20, 30, 50, 60]], [1, 2], seed=s) for s in (0, 1)]
    with EventStorage():
        losses = model(data)
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_iou"}
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    # inference: score = sqrt(sigmoid(cls) * sigmoid(quality)), thresholded on sigmoid(cls)
    model.eval()
    anchors = [Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]]))]
    cls_logits = [torch.full((1, 10), -5.0)]
    cls_logits[0][0, 3] = 2.0
    deltas = [torch.ones(1, 4)]
    quality = [torch.tensor([0.5])]
    res = model.inference_single_image(anchors, cls_logits, deltas, quality, (64, 64))
    expected = math.sqrt(torch.sigmoid(torch.tensor(2.0)) * torch.sigmoid(torch.tensor(0.5)))
    assert res.scores.tolist() == pytest.approx([expected], rel=1e-6)
    assert res.pred_classes.tolist() == [3]


def test_giou_quality_target_is_detached_and_clamped():
    # two positives at the point (4, 4) of the 8 px anchor [0, 0, 8, 8], GT [0, 0, 8, 8]:
    # box [2, 2, 6, 6] (l=t=r=b=0.25 strides): GIoU = IoU = 16 / 64; box [10, 10, 12, 12]
    # (l=t=-0.75, r=b=1): GIoU = 0 - (144 - 68) / 144 < 0, clamped to 0.
    model = _digits_model("fcos")
    anchors = torch.tensor([[0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 8.0, 8.0]])
    deltas = torch.tensor([[[0.25] * 4, [-0.75, -0.75, 1.0, 1.0]]], requires_grad=True)
    q = torch.tensor([[1.0, 0.5]], requires_grad=True)
    labels = torch.tensor([[1, 1]])
    gt = torch.tensor([[[0.0, 0.0, 8.0, 8.0]] * 2])
    losses = model.losses(anchors, [2], torch.zeros(1, 2, 10), deltas, q, labels, labels, gt)
    bce = lambda x, t: -(t * math.log(1 / (1 + math.exp(-x))) + (1 - t) * math.log(1 / (1 + math.exp(x))))  # noqa: E731
    expected = (bce(1.0, 0.25) + bce(0.5, 0.0)) / 2
    assert losses["loss_iou"].item() == pytest.approx(expected, rel=1e-5)
    # the target is detached: loss_iou sends no gradient to the boxes
    losses["loss_iou"].backward()
    assert deltas.grad is None or not deltas.grad.any()
    assert q.grad.abs().sum() > 0
