"""Post-processing parts: how a detector turns its scored candidate boxes into detections.

Every part is called as ``part(boxes, scores, classes, max_keep)`` with (R, 4) XYXY boxes, (R,)
scores and (R,) int64 classes of one image, and returns ``(boxes, scores, classes)`` of at most
``max_keep`` detections, in decreasing score. All are class-aware: boxes of different classes
never interact. They hold no parameters or buffers, so choosing one changes no checkpoint key.

* :class:`ClassAwareNMS`  greedy NMS (torchvision's kernel): the default of every detector,
  and the only one inside an exported graph (ONNX ``NonMaxSuppression``);
* :class:`SoftNMS`        Soft-NMS (Bodla et al., ICCV 2017), linear or Gaussian score decay;
* :class:`BoxVoting`      NMS, then each kept box becomes the score-weighted mean of the boxes of
  its class that overlap it (Gidaris & Komodakis 2015; Detectron's ``BBOX_VOTE``).

Use one as ``DDOD(postprocess=...)`` (``model.postprocess = L(SoftNMS)(method="gaussian")`` in a
LazyConfig) or as the merge step of test-time augmentation (test_time_augmentation.py).
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn
from torchvision.ops import box_iou, nms

from detectron2.layers import batched_nms as d2_batched_nms

__all__ = ["ClassAwareNMS", "SoftNMS", "BoxVoting", "soft_nms", "build_postprocess"]

Detections = Tuple[Tensor, Tensor, Tensor]


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_thresh: float) -> Tensor:
    """Class-aware greedy NMS -> kept indices in decreasing score. detectron2's (it splits very
    large inputs per class) when eager; torchvision's, which it calls below 40k boxes, inside an
    exported graph, where detectron2's size test would be a data-dependent branch."""
    if torch.jit.is_tracing() or torch.compiler.is_exporting():
        # torchvision's batched_nms picks its algorithm by the box count, a branch on data in
        # a graph; this is its "coordinate trick" (one NMS, each class shifted apart), which it
        # uses below 4000 boxes on the CPU: one NonMaxSuppression node in ONNX
        boxes = boxes.float()
        # (max over the boxes and a 0: defined for no boxes too)
        shift = classes.to(boxes) * (torch.cat([boxes.flatten(), boxes.new_zeros(1)]).max() + 1)
        return nms(boxes + shift[:, None], scores, iou_thresh)
    return d2_batched_nms(boxes, scores, classes, iou_thresh)


class ClassAwareNMS(nn.Module):
    """Greedy NMS per class at IoU ``iou_thresh``; what ``DDOD`` did before parts existed."""

    # export/: the graph exporters translate torchvision's NMS (ONNX NonMaxSuppression)
    exportable = True

    def __init__(self, iou_thresh: float = 0.6):
        super().__init__()
        self.iou_thresh = iou_thresh

    def forward(self, boxes: Tensor, scores: Tensor, classes: Tensor, max_keep: int) -> Detections:
        keep = batched_nms(boxes, scores, classes, self.iou_thresh)[:max_keep]
        return boxes[keep], scores[keep], classes[keep]

    def extra_repr(self) -> str:
        return f"iou_thresh={self.iou_thresh}"


def _group_by_class(boxes: Tensor, scores: Tensor, classes: Tensor):
    """Scatter R candidates into one row per present class, padded to the largest class.

    Returns (C, M, 4) boxes, (C, M) scores (-inf in the padding), (C, M) index into the input
    (-1 in the padding) and (C,) class ids.
    """
    class_ids, row, counts = torch.unique(classes, return_inverse=True, return_counts=True)
    order = torch.argsort(row, stable=True)
    row_sorted = row[order]
    first = torch.cumsum(counts, 0) - counts  # (C,) first sorted position of each class
    col = torch.arange(len(order), device=boxes.device) - first[row_sorted]
    num_rows, width = len(class_ids), int(counts.max())
    grouped_boxes = boxes.new_zeros((num_rows, width, 4))
    grouped_scores = scores.new_full((num_rows, width), -math.inf)
    index = torch.full((num_rows, width), -1, dtype=torch.int64, device=boxes.device)
    grouped_boxes[row_sorted, col] = boxes[order]
    grouped_scores[row_sorted, col] = scores[order]
    index[row_sorted, col] = order
    return grouped_boxes, grouped_scores, index, class_ids


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    classes: Tensor,
    *,
    method: str = "gaussian",
    sigma: float = 0.5,
    iou_thresh: float = 0.3,
    score_thresh: float = 0.001,
    max_keep: Optional[int] = None,
) -> Tuple[Tensor, Tensor]:
    """Class-aware Soft-NMS. (R, 4) boxes, (R,) scores, (R,) classes -> (D,) indices of the
    kept boxes and (D,) their decayed scores, in decreasing decayed score.

    Each round takes, in every class at once, the remaining box of highest (decayed) score, keeps
    it, and multiplies the other remaining scores of its class by a decay of their IoU with it:
    ``1 - IoU`` where IoU > ``iou_thresh`` ("linear"; 1 elsewhere) or ``exp(-IoU^2 / sigma)``
    ("gaussian", on every box, as in the paper; ``iou_thresh`` is not used). A box whose score
    falls to ``score_thresh`` or below is dropped. The rounds are a loop over "the next box of
    each class"; everything inside a round is one tensor op over all classes and boxes, so the
    number of rounds is the largest number of boxes one class keeps (not the number of boxes).

    With ``max_keep`` only the ``max_keep`` best are returned, and the rounds stop as soon as
    they are known: a class's picks come in non-increasing score (scores only decay), so once
    ``max_keep`` picks score at least the best score still in play, no later pick can enter.
    """
    if method not in ("linear", "gaussian"):
        raise ValueError(f"Soft-NMS method must be 'linear' or 'gaussian', got {method!r}.")
    if not len(boxes):
        return torch.zeros(0, dtype=torch.int64, device=boxes.device), scores[:0]
    # float32 at least (fp16 boxes lose IoU precision); float64 stays float64
    dtype = torch.promote_types(boxes.dtype, torch.float32)
    grouped, current, index, _ = _group_by_class(boxes.to(dtype), scores.to(dtype), classes)
    num_rows = len(grouped)
    rows = torch.arange(num_rows, device=boxes.device)
    alive = current > score_thresh
    kept_index, kept_scores = [], []
    while True:
        masked = torch.where(alive, current, current.new_full((), -math.inf))
        best_score, best = masked.max(dim=1)  # (C,)
        live = torch.isfinite(best_score)
        if not bool(live.any()):
            break
        kept_index.append(index[rows[live], best[live]])
        kept_scores.append(best_score[live])
        alive[rows, best] = False
        # IoU of each class's chosen box with every box of its class: (C, M)
        chosen = grouped[rows, best]  # (C, 4)
        lt = torch.maximum(chosen[:, None, :2], grouped[..., :2])
        rb = torch.minimum(chosen[:, None, 2:], grouped[..., 2:])
        inter = (rb - lt).clamp(min=0).prod(-1)
        area = (grouped[..., 2:] - grouped[..., :2]).clamp(min=0).prod(-1)
        chosen_area = (chosen[:, 2:] - chosen[:, :2]).clamp(min=0).prod(-1)
        iou = inter / (chosen_area[:, None] + area - inter).clamp(min=1e-12)
        if method == "linear":
            decay = torch.where(iou > iou_thresh, 1 - iou, torch.ones_like(iou))
        else:
            decay = torch.exp(-(iou * iou) / sigma)
        # classes with nothing left keep their scores (their chosen box was padding)
        current = torch.where(live[:, None], current * decay, current)
        alive &= current > score_thresh
        if max_keep is not None:
            best_left = torch.where(alive, current, current.new_full((), -math.inf)).max()
            if int((torch.cat(kept_scores) >= best_left).sum()) >= max_keep:
                break
    kept_index, kept_scores = torch.cat(kept_index), torch.cat(kept_scores)
    order = torch.argsort(kept_scores, descending=True, stable=True)[:max_keep]
    return kept_index[order], kept_scores[order].to(scores.dtype)


class SoftNMS(nn.Module):
    """Soft-NMS as a post-processing part (see :func:`soft_nms`). Defaults: the paper's
    Gaussian sigma 0.5; mmcv's linear IoU threshold 0.3 and minimum score 0.001."""

    exportable = False
    not_exportable_reason = (
        "Soft-NMS runs a data-dependent number of rounds (a Python loop), which TorchScript "
        "tracing and torch.export freeze or reject; export with the default ClassAwareNMS"
    )

    def __init__(
        self,
        method: str = "gaussian",
        sigma: float = 0.5,
        iou_thresh: float = 0.3,
        score_thresh: float = 0.001,
    ):
        super().__init__()
        if method not in ("linear", "gaussian"):
            raise ValueError(f"SoftNMS method must be 'linear' or 'gaussian', got {method!r}.")
        if sigma <= 0:
            raise ValueError(f"SoftNMS sigma must be > 0, got {sigma}.")
        self.method, self.sigma = method, sigma
        self.iou_thresh, self.score_thresh = iou_thresh, score_thresh

    def forward(self, boxes: Tensor, scores: Tensor, classes: Tensor, max_keep: int) -> Detections:
        keep, new_scores = soft_nms(
            boxes, scores, classes, method=self.method, sigma=self.sigma,
            iou_thresh=self.iou_thresh, score_thresh=self.score_thresh, max_keep=max_keep,
        )  # fmt: skip
        return boxes[keep], new_scores, classes[keep]

    def extra_repr(self) -> str:
        return (
            f"method={self.method}, sigma={self.sigma}, iou_thresh={self.iou_thresh}, "
            f"score_thresh={self.score_thresh}"
        )


class BoxVoting(nn.Module):
    """Greedy NMS at ``nms_thresh``; then every kept box is replaced by the score-weighted mean
    of all candidates of its class with IoU >= ``vote_thresh`` with it (itself included). Scores
    and classes stay those of the kept boxes. Useful to merge the views of test-time
    augmentation, whose boxes of one object differ slightly."""

    exportable = False
    not_exportable_reason = "box voting is a merge step of test-time augmentation only"

    def __init__(self, nms_thresh: float = 0.6, vote_thresh: float = 0.8):
        super().__init__()
        self.nms_thresh, self.vote_thresh = nms_thresh, vote_thresh

    def forward(self, boxes: Tensor, scores: Tensor, classes: Tensor, max_keep: int) -> Detections:
        keep = batched_nms(boxes, scores, classes, self.nms_thresh)[:max_keep]
        # (D, R) weights: score of each candidate that votes for each kept box
        iou = box_iou(boxes[keep].float(), boxes.float())
        votes = (iou >= self.vote_thresh) & (classes[keep][:, None] == classes[None, :])
        weights = torch.where(votes, scores[None, :].float(), iou.new_zeros(()))
        voted = (weights @ boxes.float()) / weights.sum(dim=1, keepdim=True)
        return voted.to(boxes.dtype), scores[keep], classes[keep]

    def extra_repr(self) -> str:
        return f"nms_thresh={self.nms_thresh}, vote_thresh={self.vote_thresh}"


POSTPROCESS_METHODS = ("nms", "soft_nms_linear", "soft_nms_gaussian", "voting")


def build_postprocess(
    method: str = "nms",
    *,
    iou_thresh: float = 0.6,
    sigma: float = 0.5,
    soft_iou_thresh: float = 0.3,
    score_thresh: float = 0.001,
    vote_thresh: float = 0.8,
) -> nn.Module:
    """A post-processing part by name (for flat configs and command lines): "nms" (at
    ``iou_thresh``), "soft_nms_linear" (``soft_iou_thresh``, ``score_thresh``),
    "soft_nms_gaussian" (``sigma``, ``score_thresh``) or "voting" (NMS at ``iou_thresh``, votes
    at ``vote_thresh``)."""
    if method == "nms":
        return ClassAwareNMS(iou_thresh)
    if method in ("soft_nms_linear", "soft_nms_gaussian"):
        return SoftNMS(
            method.rsplit("_", 1)[1], sigma=sigma, iou_thresh=soft_iou_thresh,
            score_thresh=score_thresh,
        )  # fmt: skip
    if method == "voting":
        return BoxVoting(nms_thresh=iou_thresh, vote_thresh=vote_thresh)
    raise ValueError(f"Unknown post-processing method {method!r}; one of {POSTPROCESS_METHODS}.")
