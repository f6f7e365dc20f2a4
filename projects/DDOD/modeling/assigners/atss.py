"""ATSS and DDOD's cost-based ATSS label assignment.

ATSS (Zhang et al., CVPR 2020) picks, for each ground truth, the k anchors per FPN level whose
centres are closest to the GT centre, and keeps those whose IoU with the GT is at least the mean
plus the standard deviation of the candidates' IoUs and whose centre lies inside the GT.

DDOD (Chen et al., ACM MM 2021, Eq. 1) keeps the geometric candidate selection but replaces the
IoU of the *anchor* by a cost of the *prediction*:

    cost = p ** (1 - alpha) * IoU(decoded predicted box, GT) ** alpha

where p is the predicted probability of the GT's class at that anchor. DDOD runs this twice with
different alphas, one assignment for the classification loss (alpha = 0.8) and one for the
regression losses (alpha = 0.5): that is its "label assignment disentanglement". The candidates
of the two runs are the same; ``select_candidates`` once and pass them to both (``candidates=``).

Conventions follow the reference implementation (see shared/spec/ddod.md §2): top-k by
anchor-centre distance (not by cost), an unbiased standard deviation, centre inside the GT by more
than 0.01 px, and an anchor claimed by several GTs goes to the one with the highest cost.

Candidate selection on a grid. With one anchor per location and the levels' grid sizes, the k
nearest anchors are found without a (GTs x anchors) distance block, exactly: a level's anchor
centres form a product grid (the anchors of a row share their y, those of a column their x; rows
and columns ascending) and its valid anchors a top-left rectangle, so with d^2 = dx^2 + dy^2,

* the k nearest valid rows of a GT centre (by |dy|) are consecutive and include the row just
  above or just below the centre, so they lie among the 2k rows around its ``searchsorted``
  position; likewise the columns;
* an anchor in the i-th nearest row and the j-th nearest column (ranks from 0) is at least as
  far as the (i + 1)(j + 1) anchors of the rows and columns ranked up to i and j; if that is
  more than k, k of them are at least as close and it is not needed.

So the pairs of ranks with (i + 1)(j + 1) <= k (23 for k = 9) hold a k-nearest set, wherever
the centre is, inside or outside the image. Float rounding is monotonic, so the argument holds
for the computed squared distances too and the result equals the dense path's up to the order
of anchors at exactly equal distance. No data-dependent shapes: no host-device synchronisation.
"""
import functools
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import BACKGROUND, AssignResult, DenseAssigner

__all__ = ["ATSSAssigner", "CostATSSAssigner"]

# Upper bound on the size of the (GTs x anchors-of-one-level) distance block computed at once, so
# that memory stays bounded for images with very many objects.
_MAX_DISTANCE_BLOCK = 1 << 22

Candidates = Tuple[Tensor, Tensor]


def _centers(boxes: Tensor) -> Tensor:
    return (boxes[..., :2] + boxes[..., 2:]) / 2


def aligned_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-6) -> Tensor:
    """IoU of corresponding XYXY boxes: (..., 4), (..., 4) -> (...)."""
    lt = torch.max(boxes1[..., :2], boxes2[..., :2])
    rb = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(-1)
    return inter / (area1 + area2 - inter).clamp(min=eps)


# ------------------------------------------------------------------------------------------------
# candidate selection
# ------------------------------------------------------------------------------------------------
def _level_starts(num_anchors_per_level: List[int]) -> List[int]:
    """Index of the first anchor of each level."""
    return [sum(num_anchors_per_level[:i]) for i in range(len(num_anchors_per_level))]


def _dense_candidates(
    anchors: Tensor,
    gt_ctr: Tensor,
    num_anchors_per_level: List[int],
    valid_mask: Optional[Tensor],
    topk: int,
) -> Candidates:
    """The ``topk`` nearest valid anchors per level from every (GT, anchor) distance.

    Any anchor layout. anchors: (R, 4); gt_ctr: (M, 2), M > 0. Returns (M, C) twice.
    """
    anchor_ctr = _centers(anchors)
    level_starts = _level_starts(num_anchors_per_level)
    # GTs are processed in chunks so that the (GTs x level anchors) distance block stays
    # bounded, however many objects an image has.
    chunk = max(1, _MAX_DISTANCE_BLOCK // max(max(num_anchors_per_level), 1))
    idx_chunks, ok_chunks = [], []
    for g0 in range(0, gt_ctr.shape[0], chunk):
        g = gt_ctr[g0 : g0 + chunk]
        idx_levels, ok_levels = [], []
        for start, n in zip(level_starts, num_anchors_per_level):
            if n == 0:
                continue
            ctr = anchor_ctr[start : start + n]
            # Squared distances rank like distances; skipping the sqrt changes no order.
            dist = (g[:, None, 0] - ctr[None, :, 0]) ** 2 + (g[:, None, 1] - ctr[None, :, 1]) ** 2
            if valid_mask is not None:
                dist.masked_fill_(~valid_mask[None, start : start + n], float("inf"))
            d, idx = dist.topk(min(topk, n), dim=1, largest=False)
            idx_levels.append(idx + start)
            ok_levels.append(torch.isfinite(d))
        idx_chunks.append(torch.cat(idx_levels, dim=1))
        ok_chunks.append(torch.cat(ok_levels, dim=1))
    return torch.cat(idx_chunks, dim=0), torch.cat(ok_chunks, dim=0)


def _is_grid(grid_sizes: Optional[Sequence[Tuple[int, int]]], num_anchors_per_level) -> bool:
    """Whether the anchors are one per location of non-empty ``grid_sizes`` grids."""
    if grid_sizes is None:
        return False
    if len(grid_sizes) != len(num_anchors_per_level):
        raise ValueError(
            f"{len(grid_sizes)} grid sizes for {len(num_anchors_per_level)} levels of anchors."
        )
    # Several anchors per location (A > 1) are not a product grid of centres: dense path.
    return all(h * w == n > 0 for (h, w), n in zip(grid_sizes, num_anchors_per_level))


def _host_table(values: List[int], device: torch.device) -> Tensor:
    """(len(values),) int64 on ``device``. ``torch.tensor(values, device="cuda")`` would wait
    for the GPU (a blocking copy); from pinned memory the copy is queued asynchronously."""
    table = torch.tensor(values, dtype=torch.int64)
    if device.type == "cuda":
        table = table.pin_memory()
    return table.to(device, non_blocking=True)


def _grid_lines(
    anchors: Tensor,
    valid_mask: Optional[Tensor],
    meta: Tensor,
    max_height: int,
    max_width: int,
) -> Tuple[Tensor, Tensor]:
    """Coordinates of every level's rows and columns, read from the anchors themselves.

    Row r's y is the centre y of its first anchor, column c's x that of the first row's c-th
    anchor; no assumption on strides or offsets. Rows (columns) outside the level's valid
    rectangle, or past its size, are +inf, which keeps each line sorted for ``searchsorted``
    and puts them last in any nearest-first ranking.

    Args:
        meta: (3, L) int64: first anchor index, H and W of each level.

    Returns:
        ys: (L, max_height); xs: (L, max_width).
    """
    start, height, width = meta[:, :, None]  # (L, 1) each
    rows = torch.arange(max_height, device=anchors.device)
    cols = torch.arange(max_width, device=anchors.device)
    row_anchor = start + torch.minimum(rows, height - 1) * width  # (L, Hmax)
    col_anchor = start + torch.minimum(cols, width - 1)  # (L, Wmax)
    row_ok, col_ok = rows < height, cols < width
    if valid_mask is not None:
        # The valid anchors are a top-left rectangle: column 0 tells the valid rows, row 0 the
        # valid columns (a level without valid anchors has neither).
        row_ok = row_ok & valid_mask[row_anchor]
        col_ok = col_ok & valid_mask[col_anchor]
    # centres of these anchors only: computing all R of them would cost more than the rest
    ys = torch.where(row_ok, _centers(anchors[row_anchor])[..., 1], float("inf"))
    xs = torch.where(col_ok, _centers(anchors[col_anchor])[..., 0], float("inf"))
    return ys, xs


def _nearest_lines(lines: Tensor, points: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """The k rows (or columns) of each level nearest each point, nearest first.

    Args:
        lines: (L, S) ascending coordinates per level, +inf for lines that do not count.
        points: (M,) the GT centres' coordinate along the same axis.

    Returns:
        index: (M, L, k) int64 line index; may be out of [0, S) where d2 is inf.
        d2: (M, L, k) squared distance, ascending; inf where a level has fewer than k lines.
    """
    num_levels, _ = lines.shape
    pos = torch.searchsorted(lines, points[None].expand(num_levels, -1).contiguous())  # (L, M)
    # The k nearest lines are consecutive and include line pos - 1 or pos (the nearest one),
    # so they lie in [pos - k, pos + k).
    window = pos.t()[:, :, None] + torch.arange(-k, k, device=lines.device)  # (M, L, 2k)
    padded = F.pad(lines, (k, k), value=float("inf"))  # window + k is always inside
    level = torch.arange(num_levels, device=lines.device)[None, :, None]
    d2 = (points[:, None, None] - padded[level, window + k]) ** 2
    d2, j = d2.topk(k, dim=-1, largest=False)
    return window.gather(-1, j), d2


@functools.lru_cache(maxsize=None)
def _rank_pairs(k: int) -> Tuple[List[int], List[int]]:
    """(row rank, column rank) pairs with (i + 1)(j + 1) <= k: they hold a k-nearest set."""
    pairs = [(i, j) for i in range(k) for j in range(k // (i + 1))]
    return [i for i, _ in pairs], [j for _, j in pairs]


def _grid_candidates(
    anchors: Tensor,
    gt_ctr: Tensor,
    num_anchors_per_level: List[int],
    grid_sizes: Sequence[Tuple[int, int]],
    valid_mask: Optional[Tensor],
    topk: int,
) -> Candidates:
    """Same result as :func:`_dense_candidates` for one anchor per grid location, from
    O(M * L * k) distances instead of O(M * R) (see the module docstring for why it is exact).

    The valid anchors of each level must form a top-left rectangle of its grid (padding is
    at the bottom and right), as ``valid_anchor_mask`` makes them.
    """
    per_level, num_levels = num_anchors_per_level, len(grid_sizes)
    level_starts = _level_starts(per_level)
    heights, widths = [h for h, _ in grid_sizes], [w for _, w in grid_sizes]
    pair_rows, pair_cols = _rank_pairs(topk)
    # The dense path takes min(k, n) per level: the surplus (inf) columns of tiny levels go.
    keep = [lv * topk + c for lv, n in enumerate(per_level) for c in range(min(topk, n))]
    # every integer table in one host-to-device copy
    table = _host_table(
        level_starts + heights + widths + pair_rows + pair_cols + keep, anchors.device
    )
    meta, pi, pj, keep_idx = table.split(
        [3 * num_levels, len(pair_rows), len(pair_cols), len(keep)]
    )
    meta = meta.view(3, num_levels)

    ys, xs = _grid_lines(anchors, valid_mask, meta, max(heights), max(widths))
    rows, dy2 = _nearest_lines(ys, gt_ctr[:, 1], topk)  # (M, L, k)
    cols, dx2 = _nearest_lines(xs, gt_ctr[:, 0], topk)
    # dx^2 + dy^2 in the dense path's order: with anchor centres shared along rows and columns
    # (true of generated anchors), the same floats as the dense path. inf unless both valid.
    dist = dx2.index_select(-1, pj) + dy2.index_select(-1, pi)  # (M, L, P)
    dist, j = dist.topk(topk, dim=-1, largest=False)  # (M, L, k); P >= 2k - 1 >= k
    start, height, width = meta[:, None, :, None]  # (1, L, 1) each
    # Clamp the lines into the grid so that unused (inf) pairs still index some anchor.
    row = torch.minimum(rows.gather(-1, pi.take(j)).clamp(min=0), height - 1)
    col = torch.minimum(cols.gather(-1, pj.take(j)).clamp(min=0), width - 1)
    idx, ok = start + row * width + col, torch.isfinite(dist)
    if valid_mask is not None:
        ok &= valid_mask[idx]  # only matters if the valid anchors were not a rectangle
    idx, ok = idx.flatten(1), ok.flatten(1)
    if len(keep) < idx.shape[1]:
        idx, ok = idx[:, keep_idx], ok[:, keep_idx]
    return idx, ok


# ------------------------------------------------------------------------------------------------
# positives and conflicts
# ------------------------------------------------------------------------------------------------
def _adaptive_threshold(quality: Tensor, cand_ok: Tensor) -> Tensor:
    """(M, C), (M, C) -> (M,): mean + unbiased std of each GT's valid candidates' quality."""
    okf = cand_ok.float()
    n = okf.sum(dim=1)
    mean = (quality * okf).sum(dim=1) / n.clamp(min=1)
    var = (((quality - mean[:, None]) ** 2) * okf).sum(dim=1) / (n - 1).clamp(min=1)
    return mean + var.sqrt()


def _centre_inside(anchor_ctr: Tensor, gt_boxes: Tensor, eps: float) -> Tensor:
    """(M, C, 2) candidate centres, (M, 4) GTs -> (M, C) bool: inside by more than ``eps``."""
    gt = gt_boxes[:, None, :]
    dist_to_sides = torch.cat([anchor_ctr - gt[..., :2], gt[..., 2:] - anchor_ctr], -1)
    return dist_to_sides.min(dim=-1).values > eps


def _resolve_conflicts(
    cand_idx: Tensor, is_pos: Tensor, quality: Tensor, num_anchors: int
) -> AssignResult:
    """Each anchor goes to the GT for which it is positive with the highest quality (ties: the
    lowest GT index, like an argmax over GTs), else background.

    Dense scatter-reductions over all (M, C) candidates, non-positives contributing -inf / the
    sentinel M: no nonzero() or masked writes, hence no host-device synchronisation.

    Args:
        cand_idx, is_pos, quality: (M, C) anchor index, positive flag and quality of each
            (GT, candidate) pair.
    """
    num_gt = cand_idx.shape[0]
    flat_idx = cand_idx.flatten()
    best = quality.new_full((num_anchors,), float("-inf"))
    best.scatter_reduce_(0, flat_idx, torch.where(is_pos, quality, float("-inf")).flatten(), "amax")
    is_best = is_pos & (quality == best[cand_idx])
    gt_index = torch.arange(num_gt, device=cand_idx.device)[:, None].expand_as(cand_idx)
    claim = torch.where(is_best, gt_index, num_gt)  # sentinel num_gt loses every amin
    winner = torch.full((num_anchors,), num_gt, dtype=torch.int64, device=cand_idx.device)
    winner.scatter_reduce_(0, flat_idx, claim.flatten(), "amin")
    assigned = winner < num_gt
    return AssignResult(
        torch.where(assigned, winner, BACKGROUND),
        torch.where(assigned, best, 0.0),
    )


# ------------------------------------------------------------------------------------------------
# assigners
# ------------------------------------------------------------------------------------------------
class ATSSAssigner(DenseAssigner):
    """Adaptive Training Sample Selection on the IoU of anchors with the ground truth."""

    takes_grid_sizes = True
    takes_candidates = True

    def __init__(self, *, topk: int = 9, center_eps: float = 0.01):
        """
        Args:
            topk: candidates per FPN level and GT, by distance of anchor centre to GT centre.
            center_eps: an anchor centre must be inside the GT by more than this many pixels.
        """
        super().__init__()
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}.")
        self.topk = topk
        self.center_eps = center_eps

    def candidate_quality(
        self,
        anchors: Tensor,
        cand_idx: Tensor,
        gt_boxes: Tensor,
        gt_classes: Tensor,
        pred_logits: Optional[Tensor],
        pred_boxes: Optional[Tensor],
    ) -> Tensor:
        """Quality of each (GT, candidate) pair, (M, C): here the anchor's IoU with the GT."""
        return aligned_box_iou(anchors[cand_idx], gt_boxes[:, None, :])

    def num_candidates(self, num_anchors_per_level: List[int]) -> int:
        """C, the number of candidates per GT: sum over levels of min(topk, level size)."""
        return sum(min(self.topk, n) for n in num_anchors_per_level)

    def same_candidates_as(self, other: DenseAssigner) -> bool:
        """Whether ``other`` selects the same candidates on any input, so that one
        ``select_candidates`` can serve both (DDOD's classification and regression assigners).

        Candidates are purely geometric: they depend on ``topk`` and the selection code only
        (not on alpha or center_eps).
        """
        return (
            isinstance(other, ATSSAssigner)
            and type(other).select_candidates is type(self).select_candidates
            and other.topk == self.topk
        )

    @torch.no_grad()
    def select_candidates(
        self,
        anchors: Tensor,
        num_anchors_per_level: List[int],
        gt_boxes: Tensor,
        valid_mask: Optional[Tensor] = None,
        *,
        grid_sizes: Optional[Sequence[Tuple[int, int]]] = None,
    ) -> Candidates:
        """For each GT, the ``topk`` nearest valid anchors on each level.

        Args:
            anchors: (R, 4); gt_boxes: (M, 4); valid_mask: (R,) bool or None (all valid).
            grid_sizes: (H, W) per level. When given and every level has H * W anchors (one per
                location, detectron2's order, valid anchors a top-left rectangle), selects from
                a few anchors around each GT centre instead of all of them; same result.

        Returns:
            cand_idx: (M, C) int64 anchor indices, C = sum over levels of min(topk, level size),
                levels in order, nearest first within a level.
            cand_ok: (M, C) bool, False where a level had fewer valid anchors than requested.
        """
        anchors, gt_ctr = anchors.float(), _centers(gt_boxes.float())
        if gt_ctr.shape[0] == 0:
            c = self.num_candidates(num_anchors_per_level)
            return (
                torch.zeros((0, c), dtype=torch.int64, device=anchors.device),
                torch.zeros((0, c), dtype=torch.bool, device=anchors.device),
            )
        if _is_grid(grid_sizes, num_anchors_per_level):
            return _grid_candidates(
                anchors, gt_ctr, num_anchors_per_level, grid_sizes, valid_mask, self.topk
            )
        return _dense_candidates(anchors, gt_ctr, num_anchors_per_level, valid_mask, self.topk)

    def _check_candidates(self, candidates: Candidates, num_gt: int, num_anchors_per_level):
        cand_idx, cand_ok = candidates
        shape = (num_gt, self.num_candidates(num_anchors_per_level))
        if tuple(cand_idx.shape) != shape or tuple(cand_ok.shape) != shape:
            raise ValueError(
                f"candidates of shapes {tuple(cand_idx.shape)}, {tuple(cand_ok.shape)}; "
                f"expected {shape} for {num_gt} GTs and topk={self.topk}."
            )

    def assign(
        self,
        anchors: Tensor,
        num_anchors_per_level: List[int],
        gt_boxes: Tensor,
        gt_classes: Tensor,
        *,
        valid_mask: Optional[Tensor] = None,
        pred_logits: Optional[Tensor] = None,
        pred_boxes: Optional[Tensor] = None,
        grid_sizes: Optional[Sequence[Tuple[int, int]]] = None,
        candidates: Optional[Candidates] = None,
    ) -> AssignResult:
        num_anchors, num_gt = anchors.shape[0], gt_boxes.shape[0]
        if num_gt == 0 or num_anchors == 0:
            return self.empty_result(num_anchors, anchors.device)
        if candidates is None:
            candidates = self.select_candidates(
                anchors, num_anchors_per_level, gt_boxes, valid_mask, grid_sizes=grid_sizes
            )
        else:
            self._check_candidates(candidates, num_gt, num_anchors_per_level)
        cand_idx, cand_ok = candidates
        quality = self.candidate_quality(
            anchors, cand_idx, gt_boxes, gt_classes, pred_logits, pred_boxes
        )
        is_pos = cand_ok & (quality >= _adaptive_threshold(quality, cand_ok)[:, None])
        is_pos &= _centre_inside(_centers(anchors[cand_idx]), gt_boxes, self.center_eps)
        return _resolve_conflicts(cand_idx, is_pos, quality, num_anchors)


class CostATSSAssigner(ATSSAssigner):
    """DDOD's cost-based ATSS: quality = p ** (1 - alpha) * IoU(predicted box, GT) ** alpha.

    ``alpha`` weighs box quality against classification confidence; the paper uses 0.8 for the
    classification assignment and 0.5 for the regression assignment. With ``alpha=1`` and
    predicted boxes equal to the anchors this reduces to :class:`ATSSAssigner`.
    """

    uses_predictions = True

    def __init__(self, *, alpha: float, topk: int = 9, center_eps: float = 0.01):
        super().__init__(topk=topk, center_eps=center_eps)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
        self.alpha = alpha

    def candidate_quality(self, anchors, cand_idx, gt_boxes, gt_classes, pred_logits, pred_boxes):
        iou = aligned_box_iou(pred_boxes[cand_idx], gt_boxes[:, None, :])
        prob = pred_logits[cand_idx, gt_classes[:, None]].sigmoid()
        return prob ** (1 - self.alpha) * iou**self.alpha

    def extra_repr(self):
        return f"alpha={self.alpha}, topk={self.topk}"
