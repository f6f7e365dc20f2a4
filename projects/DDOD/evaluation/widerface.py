"""The official WIDER FACE evaluation protocol (the evaluation kit's ``wider_eval.m``), as a
detectron2 ``DatasetEvaluator``.

The protocol, as the kit defines it and as implemented here:

* Ground truth comes from the kit's ``.mat`` files: ``wider_face_val.mat`` holds every face box
  (``face_bbx_list``, x y w h) of every image (``event_list``, ``file_list``), and
  ``wider_{easy,medium,hard}_val.mat`` hold, per image, the 1-based indices of the faces that
  belong to that subset (``gt_list``). The subsets are nested: hard contains medium contains easy.
* Faces outside the subset are *ignored*: a detection matched to one is neither a true nor a
  false positive (it is removed from the proposals), and they are not counted in the recall.
* The detection scores are min-max normalised to [0, 1] over the whole set (every image).
* Matching, per image, detections in decreasing score: each detection goes to the ground-truth
  face of highest IoU; at IoU >= 0.5 it marks a subset face as recalled (a second detection on
  an already recalled face recalls nothing new and stays a proposal: a false positive) or, on an
  ignored face, is dropped from the proposals. IoU uses the kit's inclusive pixel convention:
  a box x y w h spans x .. x + w, and its width is w + 1.
* For 1,000 thresholds t = 1 - k / 1000 (k = 1..1000), the proposals with normalised score >= t
  and the faces they recall are summed over the images; precision = recalled / proposals and
  recall = recalled / subset faces give the PR curve, and AP is VOC's area under its precision
  envelope.
* An image with no ground-truth face or no detection is skipped (its faces still count in the
  recall's denominator), as in the kit.

``evaluate()`` also writes the kit's submission format, one file per image,
``<output_dir>/widerface_txt/<event>/<name>.txt``: the image name, the number of detections,
then ``x y w h score`` per detection, so the official MATLAB or Python tools can re-check the
numbers.
"""
import itertools
import logging
import os
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import numpy as np
from tabulate import tabulate

from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..data.widerface import WIDERFACE_SUBSETS

__all__ = [
    "WiderFaceEvaluator",
    "load_widerface_eval_gt",
    "widerface_average_precision",
    "write_widerface_predictions",
    "read_widerface_predictions",
]

logger = logging.getLogger(__name__)

_GT_FILES = {"all": "wider_face_val.mat", **{s: f"wider_{s}_val.mat" for s in WIDERFACE_SUBSETS}}


def _string(cell) -> str:
    """The string inside a MATLAB char cell as scipy loads it (nested 1-element arrays)."""
    while isinstance(cell, np.ndarray):
        cell = cell.reshape(-1)[0]
    return str(cell)


def load_widerface_eval_gt(gt_mat_dir: str) -> Tuple[Dict[str, np.ndarray], Dict[str, Dict]]:
    """Read the evaluation kit's ground truth.

    Args:
        gt_mat_dir: the directory holding ``wider_face_val.mat`` and
            ``wider_{easy,medium,hard}_val.mat`` (the kit's ``ground_truth/``).

    Returns:
        boxes: {"<event>/<name>": (n, 4) float64 face boxes, x y w h}, every face of the image;
        subsets: {"easy"|"medium"|"hard": {"<event>/<name>": (k,) int64 0-based indices into
        that image's boxes of the faces in the subset}}.

    Raises:
        FileNotFoundError: a ``.mat`` file is missing (named).
    """
    from scipy.io import loadmat

    paths = {key: os.path.join(gt_mat_dir, name) for key, name in _GT_FILES.items()}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            "WIDER FACE evaluation needs the evaluation kit's ground truth; missing: "
            + ", ".join(f"'{p}'" for p in missing)
            + " (eval_tools/ground_truth/ of the official wider_face_eval kit)."
        )
    full = loadmat(paths["all"])
    events = [_string(e) for e in full["event_list"].reshape(-1)]
    image_keys = []  # per event, the image keys in file_list order
    boxes = {}
    for event, files, face_boxes in zip(
        events, full["file_list"].reshape(-1), full["face_bbx_list"].reshape(-1)
    ):
        keys = [f"{event}/{_string(f)}" for f in files.reshape(-1)]
        for key, b in zip(keys, face_boxes.reshape(-1)):
            boxes[key] = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        image_keys.append(keys)
    subsets = {}
    for subset in WIDERFACE_SUBSETS:
        gt_lists = loadmat(paths[subset])["gt_list"].reshape(-1)
        if len(gt_lists) != len(events):
            raise ValueError(
                f"'{paths[subset]}' has {len(gt_lists)} events, '{paths['all']}' {len(events)}."
            )
        subsets[subset] = {
            key: np.asarray(index, dtype=np.int64).reshape(-1) - 1
            for keys, per_event in zip(image_keys, gt_lists)
            for key, index in zip(keys, per_event.reshape(-1))
        }
    return boxes, subsets


def _overlaps_inclusive(dets: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU of (D, 4) and (G, 4) XYXY boxes with the kit's inclusive pixel convention (+1)."""
    lt = np.maximum(dets[:, None, :2], gts[None, :, :2])
    rb = np.minimum(dets[:, None, 2:], gts[None, :, 2:])
    inter = np.clip(rb - lt + 1, 0, None).prod(axis=2)
    area_d = (dets[:, 2:] - dets[:, :2] + 1).prod(axis=1)
    area_g = (gts[:, 2:] - gts[:, :2] + 1).prod(axis=1)
    return inter / (area_d[:, None] + area_g[None, :] - inter)


def _image_eval(dets: np.ndarray, gts: np.ndarray, keep: np.ndarray, iou_thresh: float):
    """Match one image's detections (sorted by decreasing score) to its faces.

    Args:
        dets: (D, 4) XYXY. gts: (G, 4) XYXY. keep: (G,) bool, the faces of the subset.

    Returns:
        recalled: (D,) number of subset faces recalled by detections 0..d;
        proposal: (D,) bool, whether detection d counts as a proposal (not on an ignored face).
    """
    overlaps = _overlaps_inclusive(dets, gts)
    state = np.zeros(len(gts), dtype=np.int64)  # 1 recalled, -1 ignored and hit, 0 untouched
    recalled = np.zeros(len(dets), dtype=np.int64)
    proposal = np.ones(len(dets), dtype=bool)
    for d in range(len(dets)):
        best = int(overlaps[d].argmax())
        if overlaps[d, best] >= iou_thresh:
            if not keep[best]:
                state[best] = -1
                proposal[d] = False
            elif state[best] == 0:
                state[best] = 1
        recalled[d] = int((state == 1).sum())
    return recalled, proposal


def _image_pr(scores, recalled, proposal, thresholds) -> np.ndarray:
    """(T, 2): proposals and recalled faces among the detections with score >= each threshold
    (scores sorted in decreasing order)."""
    # number of detections scoring >= t, for each t (scores decrease)
    counts = len(scores) - np.searchsorted(scores[::-1], thresholds, side="left")
    cum_proposals = np.concatenate([[0], np.cumsum(proposal)])
    cum_recalled = np.concatenate([[0], recalled])
    return np.stack([cum_proposals[counts], cum_recalled[counts]], axis=1)


def _voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (VOC 2010+), the kit's ``VOCevaldet``-style AP."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changes = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))


def widerface_average_precision(
    predictions: Dict[str, np.ndarray],
    gt_boxes: Dict[str, np.ndarray],
    subsets: Dict[str, Dict[str, np.ndarray]],
    *,
    iou_thresh: float = 0.5,
    num_thresholds: int = 1000,
) -> Dict[str, float]:
    """AP of each subset by the official protocol (module docstring).

    Args:
        predictions: {"<event>/<name>": (D, 5) x y w h score}; images without an entry have no
            detection.
        gt_boxes, subsets: from :func:`load_widerface_eval_gt`.

    Returns:
        {subset: AP in [0, 1]} (NaN for a subset without faces).
    """
    all_scores = [p[:, 4] for p in predictions.values() if len(p)]
    all_scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    low = all_scores.min() if len(all_scores) else 0.0
    span = (all_scores.max() - low) if len(all_scores) else 0.0
    thresholds = 1 - np.arange(1, num_thresholds + 1) / num_thresholds

    # normalise the scores over the set, sort each image's detections, convert to XYXY
    prepared = {}
    for key, pred in predictions.items():
        pred = np.asarray(pred, dtype=np.float64).reshape(-1, 5)
        if not len(pred):
            continue
        # one score for the whole set: every normalised score is 1 (the kit would divide by 0)
        scores = (pred[:, 4] - low) / span if span > 0 else np.ones(len(pred))
        order = np.argsort(-scores, kind="stable")
        boxes = pred[order, :4].copy()
        boxes[:, 2:] += boxes[:, :2]
        prepared[key] = (boxes, scores[order])

    results = {}
    for subset, keep_lists in subsets.items():
        pr = np.zeros((num_thresholds, 2))
        num_faces = 0
        for key, gts in gt_boxes.items():
            keep_index = keep_lists.get(key, np.zeros(0, dtype=np.int64))
            num_faces += len(keep_index)
            if key not in prepared or not len(gts):
                continue
            boxes, scores = prepared[key]
            keep = np.zeros(len(gts), dtype=bool)
            keep[keep_index] = True
            gts_xyxy = gts.copy()
            gts_xyxy[:, 2:] += gts_xyxy[:, :2]
            recalled, proposal = _image_eval(boxes, gts_xyxy, keep, iou_thresh)
            pr += _image_pr(scores, recalled, proposal, thresholds)
        precision = np.divide(pr[:, 1], pr[:, 0], out=np.zeros(num_thresholds), where=pr[:, 0] > 0)
        if not num_faces:
            logger.warning(f"The '{subset}' subset has no face: its AP is undefined (NaN).")
            results[subset] = float("nan")
            continue
        recall = pr[:, 1] / num_faces
        results[subset] = _voc_ap(recall, precision)
    return results


def write_widerface_predictions(predictions: Dict[str, np.ndarray], txt_dir: str) -> None:
    """Write ``{"<event>/<name>": (D, 5) x y w h score}`` in the kit's submission format."""
    for key, pred in predictions.items():
        path = os.path.join(txt_dir, key + ".txt")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pred = np.asarray(pred, dtype=np.float64).reshape(-1, 5)
        with open(path, "w") as f:
            f.write(os.path.basename(key) + "\n")
            f.write(f"{len(pred)}\n")
            for x, y, w, h, s in pred:
                f.write(f"{x:.1f} {y:.1f} {w:.1f} {h:.1f} {s:.6f}\n")


def read_widerface_predictions(txt_dir: str) -> Dict[str, np.ndarray]:
    """Read a directory of submission files back (``<event>/<name>.txt``)."""
    predictions = {}
    for event in sorted(os.listdir(txt_dir)):
        for name in sorted(os.listdir(os.path.join(txt_dir, event))):
            with open(os.path.join(txt_dir, event, name)) as f:
                lines = f.read().split("\n")
            count = int(lines[1])
            rows = [[float(v) for v in line.split()[:5]] for line in lines[2 : 2 + count]]
            key = f"{event}/{os.path.splitext(name)[0]}"
            predictions[key] = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return predictions


class WiderFaceEvaluator(DatasetEvaluator):
    """The official WIDER FACE val protocol on a model's outputs (module docstring).

    ``evaluate()`` returns ``{"widerface": {"easy": AP, "medium": AP, "hard": AP}}`` in percent
    (0-100, detectron2's convention), logs them as a table, and writes the submission files
    under ``<output_dir>/widerface_txt`` when ``output_dir`` is set.
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: Optional[str] = None,
        *,
        gt_mat_dir: Optional[str] = None,
        iou_thresh: float = 0.5,
        num_thresholds: int = 1000,
        distributed: bool = True,
    ):
        """
        Args:
            dataset_name: a WIDER FACE dataset (``register_widerface``); its inputs'
                ``image_id`` is "<event>/<name>".
            output_dir: where to write ``widerface_txt/``; None writes nothing.
            gt_mat_dir: the kit's ground-truth directory; default the dataset's metadata
                ``gt_mat_dir``. Checked here, so a missing file fails before inference.
            iou_thresh, num_thresholds: the protocol's 0.5 and 1,000.
            distributed: gather the predictions of every process on the main one.
        """
        if gt_mat_dir is None:
            gt_mat_dir = getattr(MetadataCatalog.get(dataset_name), "gt_mat_dir", None)
        if gt_mat_dir is None:
            raise ValueError(
                f"Dataset '{dataset_name}' has no 'gt_mat_dir' metadata (the evaluation kit's "
                "ground_truth directory); pass gt_mat_dir= to WiderFaceEvaluator."
            )
        missing = [
            os.path.join(gt_mat_dir, f)
            for f in _GT_FILES.values()
            if not os.path.isfile(os.path.join(gt_mat_dir, f))
        ]
        if missing:
            raise FileNotFoundError(
                f"WiderFaceEvaluator for '{dataset_name}': missing "
                + ", ".join(f"'{p}'" for p in missing)
                + " (eval_tools/ground_truth/ of the official wider_face_eval kit)."
            )
        self.dataset_name = dataset_name
        self.output_dir = output_dir
        self.gt_mat_dir = gt_mat_dir
        self.iou_thresh = iou_thresh
        self.num_thresholds = num_thresholds
        self.distributed = distributed
        self._predictions: Dict[str, np.ndarray] = {}

    def reset(self):
        self._predictions = {}

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            instances = out["instances"].to("cpu")
            boxes = instances.pred_boxes.tensor.numpy().astype(np.float64)
            scores = instances.scores.numpy().astype(np.float64)
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            self._predictions[str(inp["image_id"])] = np.concatenate(
                [xywh, scores[:, None]], axis=1
            )

    def evaluate(self):
        predictions = self._predictions
        if self.distributed:
            comm.synchronize()
            gathered = comm.gather(predictions, dst=0)
            if not comm.is_main_process():
                return {}
            predictions = dict(itertools.chain.from_iterable(p.items() for p in gathered))
        if self.output_dir:
            txt_dir = os.path.join(self.output_dir, "widerface_txt")
            write_widerface_predictions(predictions, txt_dir)
            logger.info(f"WIDER FACE submission files written to {txt_dir}")
        gt_boxes, subsets = load_widerface_eval_gt(self.gt_mat_dir)
        unknown = sorted(set(predictions) - set(gt_boxes))
        if unknown:
            raise KeyError(
                f"{len(unknown)} evaluated images are not in the ground truth of "
                f"{self.gt_mat_dir}, e.g. '{unknown[0]}': image_id must be '<event>/<name>'."
            )
        absent = len(set(gt_boxes) - set(predictions))
        if absent:
            logger.warning(
                f"{absent} of {len(gt_boxes)} ground-truth images were not evaluated; their faces "
                "count as missed."
            )
        aps = widerface_average_precision(
            predictions,
            gt_boxes,
            subsets,
            iou_thresh=self.iou_thresh,
            num_thresholds=self.num_thresholds,
        )
        table = tabulate(
            [[f"{100 * aps[s]:.2f}" for s in WIDERFACE_SUBSETS]],
            headers=[s.capitalize() for s in WIDERFACE_SUBSETS],
            tablefmt="pipe",
        )
        logger.info(f"WIDER FACE AP on '{self.dataset_name}' (official protocol):\n{table}")
        return OrderedDict(
            widerface=OrderedDict((s, 100 * aps[s]) for s in WIDERFACE_SUBSETS)
        )
