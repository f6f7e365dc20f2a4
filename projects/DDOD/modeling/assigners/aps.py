"""MOD's aligned points sampler (APS): positives chosen from the per-point losses.

Zhou et al., "Improving the feature misalignment of dense detectors" (MOD); shared/spec
related_methods.md §3.3-3.4 describes the paper's and the official code's versions. For each
ground truth (GT), from the current (detached) predictions:

1. candidates: the points strictly inside the GT (no centre sampling, no scale ranges);
2. per level, the ``min(topk, n)`` candidates of lowest assignment loss ``L = L_cls + L_reg``
   (``L_cls``: focal loss summed over classes; ``L_reg``: 1 - GIoU of the predicted box);
3. the ``num_levels`` levels of lowest mean ``L`` over their top-k; their union is the set C;
4. a score S per candidate (``score_mode``, below), a two-component GMM on ``gmm_scale * S``
   (means at min/max, weights 0.5, variance 10) and the points of component 0 whose score is
   at most that of the component-0 point of highest mixture likelihood: the positives.

Several GTs (the official code's two-slot scheme). A point competes for its two smallest
enclosing GTs only: for the smallest one ("slot 1") with the one-hot focal target, for the second
("slot 2") with a multi-hot target of both GTs' classes, and only if the smallest did not take it.
GTs are processed by ascending area. The reference loops over GTs one by one; here the only real
dependency is kept: a GT waits for the GTs that are slot 1 of its slot-2 points. All GTs of the
batch whose dependencies are done form a wave and are assigned together (padded candidate sets,
one batched GMM); one wave is enough unless objects are nested, each nesting depth adds one.
The reference's "skip the GT if a chosen point is already positive" cannot trigger in this order
(a point is a candidate of one GT per wave, and never after it became positive).

``score_mode``:

* ``"code"`` (default; the official code, which produced the paper's numbers):
  ``S = sqrt(sigmoid(|L_cls - L_reg|) * (L_cls + L_reg))`` with two levels, ``S = L_cls + L_reg``
  with one;
* ``"paper"``: ``S = sqrt(S_u * S_m)``, ``S_u = (softmax_C(L_cls) + softmax_C(L_reg)) / 2``,
  ``S_m = sigmoid(|L_cls - L_reg|)``, whatever the number of levels.

Anchor-based bases (MOD on RetinaNet, paper Table 6): with ``num_anchors_per_point`` A > 1 a
point's loss for a GT is that of its lowest-loss anchor, and that anchor is the one made positive.
"""
import math
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from ..losses.dense_losses import giou_loss_per_box
from .base import BACKGROUND, IGNORE, AssignResult, DenseAssigner
from .gmm import fit_gmm2_1d

__all__ = ["APSAssigner", "SCORE_MODES"]

SCORE_MODES = ("code", "paper")


class APSAssigner(DenseAssigner):
    """MOD's aligned points sampler. Uses the detached predictions; batched over images
    (:meth:`assign_batch`, which the detector calls when an assigner has it)."""

    uses_predictions = True

    def __init__(
        self,
        *,
        topk: int = 9,
        num_levels: Optional[int] = 2,
        score_mode: str = "code",
        spatial_selection: bool = True,
        gmm_scale: float = 10.0,
        gmm_init_var: float = 10.0,
        gmm_max_iter: int = 100,
        gmm_tol: float = 1e-3,
        fallback: bool = False,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        num_anchors_per_point: int = 1,
    ):
        """
        Args:
            topk: candidates kept per level (K = 9); a level with n < K candidates keeps n.
            num_levels: levels kept per GT, by lowest mean top-k loss (2); None keeps every
                level (the paper's Table 5 "no level selection").
            score_mode: "code" or "paper" (module docstring).
            spatial_selection: split the candidates with the GMM (True); False makes every
                candidate of the kept levels positive (Table 5 "no spatial selection").
            gmm_scale: the GMM is fitted to ``gmm_scale * S`` (the reference's 10).
            gmm_init_var, gmm_max_iter, gmm_tol: the GMM's initial variance (the reference's
                precision 0.1), EM iterations and tolerance (scikit-learn's defaults).
            fallback: when the split leaves a GT without positives, make its lowest-score
                candidate positive; False is the reference (the GT gets none).
            focal_alpha, focal_gamma: of the classification assignment loss.
            num_anchors_per_point: anchors per location A of the base (1: points; RetinaNet: 9).
        """
        super().__init__()
        if score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode must be one of {SCORE_MODES}, got {score_mode!r}.")
        if topk < 1:
            raise ValueError(f"topk must be at least 1, got {topk}.")
        if num_levels is not None and num_levels < 1:
            raise ValueError(f"num_levels must be at least 1 or None, got {num_levels}.")
        if num_anchors_per_point < 1:
            raise ValueError(f"num_anchors_per_point must be at least 1, got {num_anchors_per_point}.")
        self.topk = topk
        self.num_levels = num_levels
        self.score_mode = score_mode
        self.spatial_selection = spatial_selection
        self.gmm_scale = gmm_scale
        self.gmm_kwargs = dict(init_var=gmm_init_var, max_iter=gmm_max_iter, tol=gmm_tol)
        self.fallback = fallback
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.num_anchors_per_point = num_anchors_per_point

    def extra_repr(self) -> str:
        return (
            f"topk={self.topk}, num_levels={self.num_levels}, score_mode={self.score_mode!r}, "
            f"spatial_selection={self.spatial_selection}, fallback={self.fallback}, "
            f"num_anchors_per_point={self.num_anchors_per_point}"
        )

    # ------------------------------------------------------------------------------------------
    def assign(self, anchors, num_anchors_per_level, gt_boxes, gt_classes, *, valid_mask=None,
               pred_logits=None, pred_boxes=None, **kwargs) -> AssignResult:  # fmt: skip
        """One image: :meth:`assign_batch` with a batch of one."""
        valid = None if valid_mask is None else valid_mask[None]
        matched, quality = self._assign(
            anchors, num_anchors_per_level, [gt_boxes], [gt_classes], valid,
            pred_logits[None], pred_boxes[None],
        )  # fmt: skip
        return AssignResult(matched[0], quality[0])

    @torch.no_grad()
    def assign_batch(
        self,
        anchors: Tensor,
        num_anchors_per_level: List[int],
        gt_boxes: Sequence[Tensor],
        gt_classes: Sequence[Tensor],
        *,
        valid_mask: Optional[Tensor] = None,
        pred_logits: Tensor,
        pred_boxes: Tensor,
    ) -> List[AssignResult]:
        """All images at once.

        Args:
            anchors: (R, 4) XYXY, shared by the images; num_anchors_per_level sums to R.
            gt_boxes, gt_classes: per image (Mi, 4) XYXY and (Mi,) int64.
            valid_mask: (N, R) bool or None.
            pred_logits: (N, R, K) detached logits; pred_boxes: (N, R, 4) decoded XYXY boxes.

        Returns:
            per image an :class:`AssignResult` (matched GT index, -1 background, -2 ignored;
            quality: the positive's APS score S).
        """
        if sum(num_anchors_per_level) != anchors.shape[0]:
            raise ValueError("num_anchors_per_level does not sum to the number of anchors.")
        with torch.autocast(anchors.device.type, enabled=False):
            matched, quality = self._assign(
                anchors.float(), num_anchors_per_level, [b.float() for b in gt_boxes],
                list(gt_classes), valid_mask, pred_logits.float(), pred_boxes.float(),
            )  # fmt: skip
        if valid_mask is not None:
            matched = torch.where(valid_mask, matched, IGNORE)
        return [AssignResult(m, q) for m, q in zip(matched, quality)]

    # ------------------------------------------------------------------------------------------
    def _assign(self, anchors, num_anchors_per_level, gt_boxes, gt_classes, valid, logits, boxes):
        """-> (N, R) matched GT indices and (N, R) scores."""
        n_img, num_anchors, num_classes = logits.shape
        A = self.num_anchors_per_point
        device = anchors.device
        if any(n % A for n in num_anchors_per_level):
            raise ValueError(f"Every level's anchor count must be a multiple of A={A}.")
        points_per_level = [n // A for n in num_anchors_per_level]
        P = num_anchors // A
        points = ((anchors[:, :2] + anchors[:, 2:]) / 2)[::A]  # (P, 2): A anchors share a centre
        matched = torch.full((n_img, num_anchors), BACKGROUND, dtype=torch.int64, device=device)
        quality = torch.zeros((n_img, num_anchors), device=device)
        M = max((len(b) for b in gt_boxes), default=0)
        if M == 0:
            return matched, quality

        # ---- padded GTs (N, M) ------------------------------------------------------------
        gt = anchors.new_zeros((n_img, M, 4))
        cls = torch.zeros((n_img, M), dtype=torch.int64, device=device)
        gt_ok = torch.zeros((n_img, M), dtype=torch.bool, device=device)
        for i, (b, c) in enumerate(zip(gt_boxes, gt_classes)):
            gt[i, : len(b)], cls[i, : len(b)], gt_ok[i, : len(b)] = b, c, True
        area = (gt[..., 2] - gt[..., 0]) * (gt[..., 3] - gt[..., 1])
        # processing order: ascending area, ties by index (stable sort); rank[n, m] = position
        order = torch.where(gt_ok, area, area.new_full((), math.inf)).argsort(dim=1, stable=True)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(M, device=device).expand(n_img, M))

        # ---- the two smallest enclosing GTs of every point ----------------------------------
        x, y = points[:, 0], points[:, 1]
        inside = (
            (x > gt[..., 0, None]) & (y > gt[..., 1, None])
            & (x < gt[..., 2, None]) & (y < gt[..., 3, None]) & gt_ok[..., None]
        )  # (N, M, P), strictly inside  # fmt: skip
        if valid is not None:
            inside &= valid[:, ::A][:, None, :]
        key = torch.where(inside, rank[..., None], M)  # M: not enclosing
        two = key.topk(min(2, M), dim=1, largest=False)
        slot_rank = two.values  # (N, k<=2, P)
        slot_gt = torch.gather(order, 1, slot_rank.clamp(max=M - 1).flatten(1)).view_as(slot_rank)
        has1 = slot_rank[:, 0] < M
        if M > 1:
            has2 = slot_rank[:, 1] < M
            s2 = torch.where(has2, slot_gt[:, 1], slot_gt[:, 0])  # a missing 2nd falls back to 1st
        else:
            has2 = torch.zeros_like(has1)
            s2 = slot_gt[:, 0]
        s1 = slot_gt[:, 0]

        # ---- assignment losses per point and slot (N, P), at the point's best anchor ----------
        cls1 = torch.gather(cls, 1, s1)  # (N, P)
        cls2 = torch.gather(cls, 1, s2)
        classes = torch.arange(num_classes, device=device)
        onehot1 = (cls1[..., None] == classes).float()
        multihot2 = torch.maximum(onehot1, (cls2[..., None] == classes).float())
        logits_p = logits.view(n_img, P, A, num_classes)
        boxes_p = boxes.view(n_img, P, A, 4)

        def slot_losses(target, gt_idx):
            """Focal summed over classes and 1 - GIoU for every anchor, then the best anchor."""
            lcls = sigmoid_focal_loss(
                logits_p, target[:, :, None, :].expand_as(logits_p),
                alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="none",
            ).sum(-1)  # (N, P, A)  # fmt: skip
            target_box = torch.gather(gt, 1, gt_idx[..., None].expand(-1, -1, 4))  # (N, P, 4)
            lreg = giou_loss_per_box(
                boxes_p.reshape(-1, 4), target_box[:, :, None, :].expand_as(boxes_p).reshape(-1, 4)
            ).view(n_img, P, A)
            best = (lcls + lreg).argmin(-1, keepdim=True)  # (N, P, 1)
            return lcls.gather(-1, best)[..., 0], lreg.gather(-1, best)[..., 0], best[..., 0]

        lcls1, lreg1, anchor1 = slot_losses(onehot1, s1)
        lcls2, lreg2, anchor2 = slot_losses(multihot2, s2)

        # ---- dependencies: GT g waits for the slot-1 GTs of its slot-2 points ------------------
        dep = torch.zeros((n_img, M * M), dtype=torch.bool, device=device)
        pair = s1 * M + s2
        dep.scatter_(1, torch.where(has2, pair, 0), has2)
        dep = dep.view(n_img, M, M)  # dep[n, h, g]: g needs h done
        done = ~gt_ok
        taken = torch.full((n_img, P), -1, dtype=torch.int64, device=device)  # GT of a positive
        taken_anchor = torch.zeros((n_img, P), dtype=torch.int64, device=device)
        taken_score = torch.zeros((n_img, P), device=device)
        while not bool(done.all()):
            ready = ~done & ~(dep & ~done[:, :, None]).any(1)
            if not bool(ready.any()):  # cannot happen: slot 1 always precedes slot 2
                raise RuntimeError("APS: circular GT dependencies.")
            img, g = ready.nonzero(as_tuple=True)
            g_ = g[:, None]
            on1 = has1[img] & (s1[img] == g_)
            on2 = has2[img] & (s2[img] == g_) & (taken[img] < 0)
            cand = inside[img, g] & (on1 | on2)  # (G, P)
            lc = torch.where(on2, lcls2[img], lcls1[img])
            lr = torch.where(on2, lreg2[img], lreg1[img])
            best_anchor = torch.where(on2, anchor2[img], anchor1[img])
            sel, pts, score = self.select_positives(lc, lr, cand, points_per_level)
            # commit the positives of this wave (each point is a candidate of one GT per wave)
            rows = img[:, None].expand_as(pts)[sel]
            cols = pts[sel]
            gts = g[:, None].expand_as(pts)[sel]
            taken[rows, cols] = gts
            taken_anchor[rows, cols] = best_anchor[sel.nonzero(as_tuple=True)[0], cols]
            taken_score[rows, cols] = score[sel]
            done = done | ready

        pos = taken >= 0
        anchor_idx = torch.arange(P, device=device) * A + taken_anchor  # (N, P)
        img_idx = torch.arange(n_img, device=device)[:, None].expand_as(anchor_idx)
        matched[img_idx[pos], anchor_idx[pos]] = taken[pos]
        quality[img_idx[pos], anchor_idx[pos]] = taken_score[pos]
        return matched, quality

    def select_positives(
        self, lcls: Tensor, lreg: Tensor, cand: Tensor, points_per_level: List[int]
    ):
        """Steps 2-4 for G GTs at once, from their per-point assignment losses (the tests set
        these by hand).

        Args:
            lcls, lreg: (G, P) assignment losses of every point for the GT; cand: (G, P) bool.

        Returns:
            sel: (G, C) bool, the chosen candidates; pts: (G, C) their point indices;
            score: (G, C) their scores S (unscaled).
        """
        loss = torch.where(cand, lcls + lreg, lcls.new_full((), math.inf))
        vals, idxs = [], []
        start = 0
        for n in points_per_level:  # top-min(k, n) per level
            k = min(self.topk, n)
            v, i = loss[:, start : start + n].topk(k, dim=1, largest=False)
            pad = self.topk - k
            vals.append(F.pad(v, (0, pad), value=math.inf))
            idxs.append(F.pad(i + start, (0, pad), value=0))
            start += n
        vals = torch.stack(vals, 1)  # (G, L, K)
        idxs = torch.stack(idxs, 1)
        ok = torch.isfinite(vals)
        count = ok.sum(-1)
        mean = torch.where(ok, vals, 0).sum(-1) / count.clamp(min=1)
        mean = torch.where(count > 0, mean, math.inf)  # levels without candidates: never kept
        num_levels = mean.shape[1] if self.num_levels is None else min(self.num_levels, mean.shape[1])
        level_order = mean.argsort(dim=1, stable=True)[:, :num_levels]  # (G, nl)
        kept = level_order[..., None].expand(-1, -1, self.topk)
        pts = idxs.gather(1, kept).flatten(1)  # (G, C)
        mask = ok.gather(1, kept).flatten(1)
        used_levels = torch.isfinite(mean.gather(1, level_order)).sum(1)  # (G,)
        lc, lr = lcls.gather(1, pts), lreg.gather(1, pts)

        s_m = torch.sigmoid((lc - lr).abs())
        if self.score_mode == "code":
            two = (lc + lr) * s_m
            score = torch.where(used_levels[:, None] >= 2, two.clamp(min=0).sqrt(), lc + lr)
        else:
            neg = lc.new_full((), -math.inf)
            s_u = 0.5 * (
                torch.where(mask, lc, neg).softmax(1) + torch.where(mask, lr, neg).softmax(1)
            )
            score = (s_u * s_m).sqrt()
        score = torch.where(mask, score, 0.0)
        if not self.spatial_selection:
            return mask, pts, score

        x = self.gmm_scale * score
        fit = fit_gmm2_1d(x, mask, **self.gmm_kwargs)
        x64 = x.double()
        comp0 = (fit.predict(x64) == 0) & mask
        loglik = torch.where(comp0, fit.score_samples(x64), -math.inf)
        best = loglik.argmax(1, keepdim=True)
        sel = comp0 & (x <= x.gather(1, best))
        # one candidate: positive without a fit (the reference skips the GMM)
        single = mask.sum(1, keepdim=True) == 1
        sel = torch.where(single, mask, sel)
        if self.fallback:
            empty = ~sel.any(1, keepdim=True) & mask.any(1, keepdim=True)
            lowest = torch.where(mask, x, math.inf).argmin(1, keepdim=True)
            sel = sel | (empty & (torch.arange(x.shape[1], device=x.device) == lowest))
        return sel, pts, score
