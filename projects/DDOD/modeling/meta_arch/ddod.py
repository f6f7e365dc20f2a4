"""The DDOD meta-architecture: a one-stage dense detector whose label assignment, head towers and
per-level loss weights can each be disentangled (or not).

One class covers the paper's three bases and DDOD on each of them, because every difference
between them is a part or a switch:

===============  ====================  =========================  ======================
part             RetinaNet             FCOS*                      ATSS (IoU branch)
===============  ====================  =========================  ======================
anchors          9 per location        1 point per location       1 per location (8 x s)
assigner         ``MaxIoUAssigner``    ``FCOSPointAssigner``      ``ATSSAssigner``
box coder        ``Box2BoxTransform``  ``Box2BoxTransformLTRB``   ``Box2BoxTransform``
box loss         L1 on deltas          GIoU, centerness-weighted  GIoU x 2
quality branch   none                  centerness                 IoU
inference score  cls                   cls x centerness           cls x IoU
head             no GN, no Scale       GN, Scale                  GN, Scale
===============  ====================  =========================  ======================

(configs/common/models/{retinanet,fcos,atss}.py).

and DDOD's three disentanglements are independent switches on any base:

* label assignment: ``reg_assigner`` (``None`` shares the classification assignment; a second
  assigner with its own parameters disentangles it: IoU thresholds for RetinaNet, alpha of the
  cost-based ATSS for ATSS/FCOS);
* spatial features: the head's deformable conv position (``DDODHead(cls_deform_index=...)``);
* pyramid supervision: ``level_reweighting`` (``None`` or strategy "none" gives every level 1).

Other methods are compositions of the same parts. VarifocalNet (configs/common/models/vfnet.py)
is this class with ``VFNetHead`` (star-shaped deformable sampling, a refined box on top of an
initial one), ``cls_loss=VarifocalLoss()`` (IoU-aware classification targets),
``iou_weighted_box_loss=True`` and the LTRB coder in pixels. The parts this file delegates to:

* the classification loss: ``cls_loss``, a module of ``losses/`` (``FocalLoss``, default, or
  ``VarifocalLoss``, which asks for the IoU of the scored box with its GT at each positive);
* the box terms: ``losses.weighted_box_loss`` on the scored box and, when the head also returns
  an initial box (VFNet), on that one too (``loss_bbox_init``);
* the head's output contract (heads/build.py): ``(cls_logits, bbox_deltas, quality_logits)``
  and optionally a fourth list, the initial box deltas, and a fifth, box distribution logits
  (GFL), trained by ``box_distribution_loss`` (distribution focal loss);
* extra backbone outputs the head reads but that carry no anchors: ``head_extra_features``
  (TSCODE's res2, handed to the head as ``below``).

GFL (configs/common/models/gfl.py) is ``GFLHead`` (joint class-IoU score, integral box over
side distributions), ``cls_loss=QualityFocalLoss()``, ``box_distribution_loss=
DistributionFocalLoss()`` and ``score_weighted_box_loss=True``; TSCODE is a part of the head
(``head.tscode``, tscode/) on any of them.
"""
import logging
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from detectron2.config import configurable
from detectron2.layers import cat
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator, build_anchor_generator
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils import events

from ..anchors import valid_anchor_mask
from ..assigners import (
    BACKGROUND,
    ATSSAssigner,
    CostATSSAssigner,
    DenseAssigner,
    FCOSPointAssigner,
    MaxIoUAssigner,
)
from ..assigners.atss import aligned_box_iou
from ..box_coders import Box2BoxTransformLTRB
from ..heads import build_dense_head
from ..postprocess import ClassAwareNMS
from ..losses import (
    BOX_REG_LOSS_TYPES,
    FocalLoss,
    LevelReweighting,
    VarifocalLoss,
    centerness_target,
    giou_loss_per_box,
    positive_normalizer,
    quality_bce_per_box,
    weighted_box_loss,
)

__all__ = ["DDOD"]

logger = logging.getLogger(__name__)

QUALITY_TARGETS = ("iou", "centerness", "giou")
# With iou_weighted_box_loss: "own_iou" weights each box stage by its own IoU, normalised by the
# IoU sum (VFNet's official code); "scored_iou" weights every stage by the scored box's IoU,
# normalised by the positive count (the VFNet paper's Eq. 3).
IOU_WEIGHTINGS = ("own_iou", "scored_iou")
TEST_SCORE_MODES = ("cls", "cls_x_quality", "sqrt_cls_x_quality")


def _put_scalars(**kwargs):
    """Log to the current EventStorage, if there is one (there is none in unit tests)."""
    if events._CURRENT_STORAGE_STACK:
        events.get_event_storage().put_scalars(**kwargs)


@META_ARCH_REGISTRY.register()
class DDOD(DenseDetector):
    """Disentangle Your Dense Object Detector (Chen et al., ACM MM 2021), on any dense base.

    Training: one or two label assignments on the same (detached) predictions; focal loss on the
    classification positives; box loss (GIoU or smooth-L1) and quality-branch BCE on the
    regression positives; each loss normalised by its own all-reduced positive count and
    weighted per FPN level.
    Inference: score = sigmoid(cls), times sigmoid(quality) with ``test_score_mode=
    "cls_x_quality"``, thresholded on sigmoid(cls); class-aware NMS.

    With the defaults and the parts of ``configs/common/models/ddod.py`` this is the paper's
    DDOD (ATSS base).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: List[str],
        head_extra_features: Optional[Dict[str, str]] = None,
        anchor_generator: DefaultAnchorGenerator,
        box2box_transform,
        num_classes: int,
        cls_assigner: DenseAssigner,
        reg_assigner: Optional[DenseAssigner] = None,
        level_reweighting: Optional[LevelReweighting] = None,
        cls_loss: Optional[nn.Module] = None,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        loss_cls_weight: float = 1.0,
        loss_bbox_weight: float = 2.0,
        loss_quality_weight: float = 1.0,
        loss_init_bbox_weight: float = 1.5,
        box_reg_loss_type: str = "giou",
        smooth_l1_beta: float = 0.0,
        quality_target: Optional[str] = "iou",
        centerness_weighted_box_loss: bool = False,
        iou_weighted_box_loss: bool = False,
        iou_weighting: str = "own_iou",
        score_weighted_box_loss: bool = False,
        box_distribution_loss: Optional[nn.Module] = None,
        loss_box_distribution_weight: float = 0.25,
        test_score_mode: str = "cls_x_quality",
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.6,
        max_detections_per_image: int = 100,
        postprocess: Optional[nn.Module] = None,
        pixel_mean: Tuple[float, ...],
        pixel_std: Tuple[float, ...],
        input_format: str = "BGR",
    ):
        """
        Args:
            backbone: a backbone whose ``head_in_features`` outputs are the FPN levels.
            head: a dense head returning ``(cls_logits, bbox_deltas, quality_logits)`` per level
                (see :class:`DDODHead`), and optionally a fourth list, the initial box deltas
                of a head that refines its boxes (:class:`VFNetHead`).
            head_in_features: backbone outputs the head runs on, in increasing stride.
            head_extra_features: {head keyword: backbone output} of maps the head reads besides
                its levels, with no anchors on them (TSCODE: ``{"below": "res2"}``).
            anchor_generator: anchors per level, in the head's output order.
            box2box_transform: coder between anchors and box deltas: ``Box2BoxTransform``
                (XYWH deltas) or :class:`Box2BoxTransformLTRB` (FCOS's l, t, r, b).
            num_classes: number of foreground classes K.

            # Assignment and loss parameters
            cls_assigner: assigns the classification targets.
            reg_assigner: assigns the regression (box and IoU-branch) targets; None shares the
                classification assignment.
            level_reweighting: per-level loss factors; None means 1.0 on every level.
            cls_loss: the classification loss part: ``FocalLoss`` or ``VarifocalLoss``
                (losses/); None builds ``FocalLoss(focal_loss_alpha, focal_loss_gamma)``.
            focal_loss_alpha, focal_loss_gamma: focal loss parameters (when ``cls_loss`` is None).
            loss_cls_weight, loss_bbox_weight, loss_quality_weight: weights of the
                classification, box and quality-branch losses.
            loss_init_bbox_weight: weight of the initial box's loss, when the head returns one
                (VFNet: 1.5, and 2.0 for the refined box).
            box_reg_loss_type: "giou", "diou" or "ciou" (on decoded boxes) or "smooth_l1" (on
                the deltas; L1 with ``smooth_l1_beta=0``, RetinaNet's).
            quality_target: what the head's quality branch learns on the regression positives:
                "iou" (IoU of the detached predicted box with its GT, DDOD/ATSS(IoU)),
                "centerness" (FCOS), "giou" (MOD: GIoU of the detached predicted box, clamped
                to [0, 1]; logged as ``loss_iou``), or None when the head has no quality branch.
            centerness_weighted_box_loss: weight each positive's box loss by its centerness
                target and normalise by their sum (FCOS*).
            iou_weighted_box_loss: weight each positive's box loss by the (detached) IoU of
                that box with its GT and normalise by their sum (VFNet; each box stage by its
                own IoU).
            iou_weighting: with ``iou_weighted_box_loss``, "own_iou" (above, the official code)
                or "scored_iou" (paper Eq. 3: every box stage weighted by the scored box's IoU,
                normalised by the positive count).
            score_weighted_box_loss: weight each positive's box (and distribution) loss by its
                detached highest class probability and normalise by their all-reduced sum (GFL).
            box_distribution_loss: loss on the head's fifth output, the per-side distribution
                logits, against the target distances (GFL's ``DistributionFocalLoss``); None
                for heads without one.
            loss_box_distribution_weight: its weight (GFL: 0.25), as "loss_dfl".

            # Inference parameters
            test_score_mode: "cls", "cls_x_quality" (times the quality branch's sigmoid) or
                "sqrt_cls_x_quality" (the square root of that product: FCOS-imprv, MOD).
            test_score_thresh: keep (anchor, class) pairs with sigmoid(cls) above this.
            test_topk_candidates: pairs kept per level after thresholding.
            test_nms_thresh: IoU threshold of the class-aware NMS.
            max_detections_per_image: detections kept per image.
            postprocess: the part that turns scored candidates into detections
                (modeling/postprocess.py: ``ClassAwareNMS``, ``SoftNMS``, ``BoxVoting``); None
                is class-aware NMS at ``test_nms_thresh``.

            # Input parameters
            pixel_mean, pixel_std: per-channel normalisation, in ``input_format`` order.
            input_format: "BGR" or "RGB".
        """
        super().__init__(
            backbone, head, head_in_features, pixel_mean=pixel_mean, pixel_std=pixel_std
        )
        self.num_classes = num_classes
        self.anchor_generator = anchor_generator
        self.box2box_transform = box2box_transform
        if anchor_generator.num_cell_anchors[0] != getattr(head, "num_anchors", 1):
            raise ValueError(
                f"The anchor generator makes {anchor_generator.num_cell_anchors[0]} anchors per "
                f"location but the head predicts {getattr(head, 'num_anchors', 1)}."
            )
        self.cls_assigner = cls_assigner
        self.reg_assigner = reg_assigner
        self.level_reweighting = level_reweighting
        if level_reweighting is not None and level_reweighting.num_levels != len(head_in_features):
            raise ValueError(
                f"level_reweighting has {level_reweighting.num_levels} levels, the head runs on "
                f"{len(head_in_features)}."
            )
        if cls_loss is None:
            cls_loss = FocalLoss(alpha=focal_loss_alpha, gamma=focal_loss_gamma)
        # a submodule without parameters or buffers: no checkpoint keys
        self.cls_loss = cls_loss
        if iou_weighting not in IOU_WEIGHTINGS:
            raise ValueError(f"iou_weighting must be one of {IOU_WEIGHTINGS}.")
        if centerness_weighted_box_loss + iou_weighted_box_loss + score_weighted_box_loss > 1:
            raise ValueError(
                "Choose one of centerness_weighted_box_loss, iou_weighted_box_loss and "
                "score_weighted_box_loss."
            )
        self.head_extra_features = dict(head_extra_features or {})
        outputs = backbone.output_shape()
        for key, name in self.head_extra_features.items():
            if name not in outputs:
                raise ValueError(
                    f"head_extra_features[{key!r}] = {name!r} is not a backbone output "
                    f"({sorted(outputs)}); TSCODE's res2 needs FPNWithBottomUp."
                )
        self.score_weighted_box_loss = score_weighted_box_loss
        self.box_distribution_loss = box_distribution_loss
        self.loss_box_distribution_weight = loss_box_distribution_weight
        has_quality = getattr(head, "quality", None) is not None
        if quality_target is not None and quality_target not in QUALITY_TARGETS:
            raise ValueError(f"quality_target must be one of {QUALITY_TARGETS} or None.")
        if has_quality != (quality_target is not None):
            raise ValueError(
                f"quality_target={quality_target!r} but the head "
                f"{'has' if has_quality else 'has no'} quality branch."
            )
        if test_score_mode not in TEST_SCORE_MODES:
            raise ValueError(f"test_score_mode must be one of {TEST_SCORE_MODES}.")
        if test_score_mode != "cls" and not has_quality:
            raise ValueError(f"test_score_mode={test_score_mode!r} needs a quality branch.")
        if box_reg_loss_type not in BOX_REG_LOSS_TYPES:
            raise ValueError(f"box_reg_loss_type must be one of {BOX_REG_LOSS_TYPES}.")
        # fmt: off
        self.box_reg_loss_type        = box_reg_loss_type
        self.smooth_l1_beta           = smooth_l1_beta
        self.quality_target           = quality_target
        self.centerness_weighted_box_loss = centerness_weighted_box_loss
        self.iou_weighted_box_loss    = iou_weighted_box_loss
        self.iou_weighting            = iou_weighting
        self.loss_init_bbox_weight    = loss_init_bbox_weight
        self.test_score_mode          = test_score_mode
        self.loss_cls_weight          = loss_cls_weight
        self.loss_bbox_weight         = loss_bbox_weight
        self.loss_quality_weight      = loss_quality_weight
        self.test_score_thresh        = test_score_thresh
        self.test_topk_candidates     = test_topk_candidates
        self.test_nms_thresh          = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image
        self.input_format             = input_format
        # fmt: on
        # a submodule without parameters or buffers: no checkpoint keys
        self.postprocess = ClassAwareNMS(test_nms_thresh) if postprocess is None else postprocess

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        d = cfg.MODEL.DDOD
        feature_shapes = [backbone.output_shape()[f] for f in d.IN_FEATURES]
        head = build_dense_head(cfg, feature_shapes)

        def assigner(branch):
            """The assigner of one branch ("CLS" or "REG") from MODEL.DDOD.ASSIGNER."""
            kind = d.ASSIGNER
            if kind == "cost_atss":
                alpha = d.get(f"{branch}_ALPHA")
                if alpha < 0:  # older configs: a negative alpha meant plain ATSS
                    return ATSSAssigner(topk=d.ATSS_TOPK)
                return CostATSSAssigner(alpha=alpha, topk=d.ATSS_TOPK)
            if kind == "atss":
                return ATSSAssigner(topk=d.ATSS_TOPK)
            if kind == "max_iou":
                pos = d.get(f"{branch}_POS_IOU")
                return MaxIoUAssigner(pos_iou_thresh=pos, neg_iou_thresh=min(d.NEG_IOU, pos))
            if kind == "fcos":
                return FCOSPointAssigner(
                    strides=[s.stride for s in feature_shapes],
                    size_ranges=[tuple(r) for r in d.FCOS_SIZE_RANGES],
                    center_sampling_radius=d.FCOS_CENTER_SAMPLING_RADIUS,
                )
            raise ValueError(f"Unknown MODEL.DDOD.ASSIGNER {kind!r}.")

        coders = {
            "delta_xywh": lambda: Box2BoxTransform(weights=d.BBOX_REG_WEIGHTS),
            "ltrb": lambda: Box2BoxTransformLTRB(normalize_by_size=True),
            # VFNet: the head's distances are already in pixels
            "ltrb_pixels": lambda: Box2BoxTransformLTRB(normalize_by_size=False),
        }
        cls_losses = {
            "focal": lambda: FocalLoss(alpha=d.FOCAL_LOSS_ALPHA, gamma=d.FOCAL_LOSS_GAMMA),
            "varifocal": lambda: VarifocalLoss(
                alpha=d.VFL_ALPHA, gamma=d.VFL_GAMMA, iou_weighted=d.VFL_IOU_WEIGHTED
            ),
        }
        if d.CLS_LOSS not in cls_losses:
            raise ValueError(f"MODEL.DDOD.CLS_LOSS must be one of {sorted(cls_losses)}.")
        if d.BOX_CODER not in coders:
            raise ValueError(f"MODEL.DDOD.BOX_CODER must be one of {sorted(coders)}.")
        return {
            "backbone": backbone,
            "head": head,
            "head_in_features": d.IN_FEATURES,
            "anchor_generator": build_anchor_generator(cfg, feature_shapes),
            "box2box_transform": coders[d.BOX_CODER](),
            "num_classes": d.NUM_CLASSES,
            "cls_assigner": assigner("CLS"),
            "reg_assigner": assigner("REG") if d.SEPARATE_ASSIGNMENT else None,
            "level_reweighting": LevelReweighting(
                len(d.IN_FEATURES),
                strategy=d.REWEIGHT_STRATEGY,
                start=d.REWEIGHT_RANGE[0],
                end=d.REWEIGHT_RANGE[1],
                cumulative=d.REWEIGHT_CUMULATIVE,
                shared_counters=d.REWEIGHT_SHARED_COUNTERS,
                sync=d.REWEIGHT_SYNC,
            )
            if d.LEVEL_REWEIGHTING
            else None,
            "cls_loss": cls_losses[d.CLS_LOSS](),
            "loss_cls_weight": d.LOSS_CLS_WEIGHT,
            "loss_bbox_weight": d.LOSS_BBOX_WEIGHT,
            "loss_quality_weight": d.LOSS_QUALITY_WEIGHT,
            "loss_init_bbox_weight": d.LOSS_INIT_BBOX_WEIGHT,
            "box_reg_loss_type": d.BOX_REG_LOSS_TYPE,
            "smooth_l1_beta": d.SMOOTH_L1_BETA,
            "quality_target": None if d.QUALITY_TARGET == "none" else d.QUALITY_TARGET,
            "centerness_weighted_box_loss": d.CENTERNESS_WEIGHTED_BOX_LOSS,
            "iou_weighted_box_loss": d.IOU_WEIGHTED_BOX_LOSS,
            "iou_weighting": d.IOU_WEIGHTING,
            "test_score_mode": d.SCORE_MODE_TEST,
            "test_score_thresh": d.SCORE_THRESH_TEST,
            "test_topk_candidates": d.TOPK_CANDIDATES_TEST,
            "test_nms_thresh": d.NMS_THRESH_TEST,
            "max_detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "input_format": cfg.INPUT.FORMAT,
        }

    # ------------------------------------------------------------------------------------------
    # shared helpers
    # ------------------------------------------------------------------------------------------
    def forward(self, batched_inputs):
        """DenseDetector's forward; with ``head_extra_features`` the head also gets those
        backbone outputs as keywords (anchors, assignment and inference see the levels only)."""
        if not self.head_extra_features:
            return super().forward(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        features, predictions = self.features_and_predictions(images.tensor)
        if self.training:
            gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
            return self.forward_training(images, features, predictions, gt_instances)
        results = self.forward_inference(images, features, predictions)
        processed_results = []
        for results_per_image, input_per_image, image_size in zip(
            results, batched_inputs, images.image_sizes
        ):
            height = input_per_image.get("height", image_size[0])
            width = input_per_image.get("width", image_size[1])
            r = detector_postprocess(results_per_image, height, width)
            processed_results.append({"instances": r})
        return processed_results

    def features_and_predictions(self, images: Tensor):
        """Backbone and head on a normalised, padded (N, 3, H, W) batch: the head's input levels
        (per level (N, C, Hl, Wl)) and its outputs. The one place that knows which backbone
        outputs the head takes (its levels, plus ``head_extra_features`` as keywords); used by
        ``forward``, test-time augmentation and export."""
        all_features = self.backbone(images)
        features = [all_features[f] for f in self.head_in_features]
        extra = {k: all_features[name] for k, name in self.head_extra_features.items()}
        return features, self.head(features, **extra)

    def _flatten_distributions(self, predictions) -> Optional[Tensor]:
        """The head's fifth output (per-level (N, 4*(n+1), Hl, Wl) distribution logits), if
        any, as one (N, R, 4, n+1) tensor in anchor order."""
        if len(predictions) < 5 or not predictions[4]:
            return None
        dists = predictions[4]
        bins = dists[0].shape[1] // 4
        flat = self._transpose_dense_predictions([dists], [4 * bins])[0]
        return cat(flat, dim=1).unflatten(-1, (4, bins))

    def _flatten_predictions(
        self, predictions
    ) -> Tuple[List[Tensor], List[Tensor], List[Tensor], List[Tensor]]:
        """Per-level head outputs -> per-level (N, Hl*Wl*A, K), (N, ., 4), (N, .) and (N, ., 4)
        tensors: class logits, scored box deltas, quality logits ([] if none), initial box
        deltas ([] unless the head refines its boxes)."""
        cls_logits, bbox_deltas, quality_logits = predictions[:3]
        init_deltas = predictions[3] if len(predictions) > 3 else []
        outputs = [cls_logits, bbox_deltas] + ([quality_logits] if quality_logits else [])
        dims = [self.num_classes, 4] + ([1] if quality_logits else [])
        transposed = self._transpose_dense_predictions(outputs, dims)
        quality = [q[..., 0] for q in transposed[2]] if quality_logits else []
        if init_deltas:
            init_deltas = self._transpose_dense_predictions([init_deltas], [4])[0]
        return transposed[0], transposed[1], quality, init_deltas

    def _decode(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        """(..., 4) deltas and broadcastable (..., 4) anchors -> (..., 4) XYXY boxes."""
        anchors = anchors.expand_as(deltas)
        boxes = self.box2box_transform.apply_deltas(deltas.reshape(-1, 4), anchors.reshape(-1, 4))
        return boxes.view(deltas.shape)

    # ------------------------------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _sanitize_gt(gt: Instances, image_size: Tuple[int, int]) -> Instances:
        """Clip GT boxes to the image and drop the ones that are empty or not finite.

        detectron2's DatasetMapper already does this for its own data, but the model is also fed
        by other pipelines; a zero-area, inverted or NaN box would otherwise reach the IoU and
        GIoU terms.
        """
        boxes = gt.gt_boxes.tensor
        h, w = image_size
        # Boxes.clip() asserts finite boxes, so clip by hand (a new tensor: the caller's
        # Instances stay as they were) and test finiteness before clipping turns an inf into
        # the border.
        clipped = Boxes(torch.stack([
            boxes[:, 0].clamp(min=0, max=w), boxes[:, 1].clamp(min=0, max=h),
            boxes[:, 2].clamp(min=0, max=w), boxes[:, 3].clamp(min=0, max=h),
        ], dim=1))  # fmt: skip
        keep = torch.isfinite(boxes).all(dim=1) & clipped.nonempty(threshold=1e-3)
        # One nonzero() per image (a host-device sync on a GPU); integer indexing needs none.
        keep_idx = keep.nonzero().squeeze(1)
        kept = gt[keep_idx]
        kept.gt_boxes = clipped[keep_idx]
        return kept

    def forward_training(self, images: ImageList, features, predictions, gt_instances):
        gt_instances = [self._sanitize_gt(g, s) for g, s in zip(gt_instances, images.image_sizes)]
        cls_logits, bbox_deltas, quality, init_deltas = self._flatten_predictions(predictions)
        anchors_per_level = self.anchor_generator(features)
        num_anchors_per_level = [len(a) for a in anchors_per_level]
        anchors = Boxes.cat(anchors_per_level).tensor  # (R, 4)
        valid = valid_anchor_mask(
            [f.shape[-2:] for f in features],
            self.anchor_generator.strides,
            self.anchor_generator.num_cell_anchors[0],
            images.image_sizes,
            self.backbone.size_divisibility,
            device=anchors.device,
        )
        cls_logits, bbox_deltas = cat(cls_logits, dim=1), cat(bbox_deltas, dim=1)
        quality = cat(quality, dim=1) if quality else None
        init_deltas = cat(init_deltas, dim=1) if init_deltas else None
        distributions = self._flatten_distributions(predictions)
        if (distributions is None) != (self.box_distribution_loss is None):
            raise ValueError(
                "box_distribution_loss needs a head with box distribution outputs (GFLHead), "
                "and such a head needs box_distribution_loss."
            )

        cls_labels, reg_labels, reg_gt_boxes, cls_gt_boxes = self.label_anchors(
            anchors, num_anchors_per_level, valid, gt_instances, cls_logits, bbox_deltas,
            grid_sizes=[tuple(f.shape[-2:]) for f in features],
        )  # fmt: skip
        return self.losses(
            anchors, num_anchors_per_level, cls_logits, bbox_deltas, quality,
            cls_labels, reg_labels, reg_gt_boxes, cls_gt_boxes, init_deltas,
            **({} if distributions is None else {"distributions": distributions}),
        )  # fmt: skip

    @torch.no_grad()
    def label_anchors(
        self,
        anchors: Tensor,
        num_anchors_per_level: List[int],
        valid: Tensor,
        gt_instances: List[Instances],
        cls_logits: Tensor,
        bbox_deltas: Tensor,
        grid_sizes: Optional[List[Tuple[int, int]]] = None,
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Run the classification and the regression assignment on every image.

        With ``reg_assigner=None`` one assignment serves both branches. Cost-based assigners see
        the detached predictions, decoded once for both assignments. When both assigners pick
        the same geometric candidates (DDOD's two cost-ATSS assigners differ only in alpha),
        the candidates are selected once per image and shared.

        Args:
            anchors: (R, 4); valid: (N, R) bool; cls_logits: (N, R, K); bbox_deltas: (N, R, 4).
            grid_sizes: (H, W) of each level's feature map; lets grid-aware assigners select
                candidates without a dense (GTs x anchors) distance block.

        Returns:
            cls_labels, reg_labels: (N, R) int64; -1 for ignored (padding) anchors, K for
                background, else the class of the assigned ground truth.
            reg_gt_boxes, cls_gt_boxes: (N, R, 4) ground truth of the regression and of the
                classification assignment (zeros where not foreground; the same tensor when
                one assignment serves both); the classification one is read only by a loss
                with IoU targets (VFL).
        """
        assigners = [self.cls_assigner]
        if self.reg_assigner is not None:
            assigners.append(self.reg_assigner)
        pred_logits = pred_boxes = None
        if any(a.uses_predictions for a in assigners):
            pred_logits = cls_logits.detach()
            pred_boxes = self._decode(bbox_deltas.detach().float(), anchors)  # (N, R, 4)
        share_candidates = len(assigners) == 2 and assigners[0].same_candidates_as(assigners[1])
        labels = [[] for _ in assigners]
        gt_boxes = [[] for _ in assigners]
        # Assigners with an ``assign_batch`` (APS) take every image at once; the others run
        # image by image below.
        batched = {
            branch: assigner.assign_batch(
                anchors, num_anchors_per_level,
                [gt.gt_boxes.tensor for gt in gt_instances], [gt.gt_classes for gt in gt_instances],
                valid_mask=valid, pred_logits=pred_logits, pred_boxes=pred_boxes,
            )  # fmt: skip
            for branch, assigner in enumerate(assigners)
            if hasattr(assigner, "assign_batch")
        }
        for i, gt in enumerate(gt_instances):
            candidates = None
            if share_candidates:
                candidates = assigners[0].select_candidates(
                    anchors, num_anchors_per_level, gt.gt_boxes.tensor, valid[i],
                    grid_sizes=grid_sizes,
                )  # fmt: skip
            for branch, assigner in enumerate(assigners):
                if branch in batched:
                    matched = batched[branch][i].matched_gt
                    labels[branch].append(self._labels_from_matches(matched, gt.gt_classes))
                    gt_boxes[branch].append(
                        self._boxes_from_matches(matched, gt.gt_boxes.tensor, anchors)
                    )
                    continue
                kwargs = {}
                if assigner.uses_predictions:
                    kwargs = {"pred_logits": pred_logits[i], "pred_boxes": pred_boxes[i]}
                matched = assigner(
                    anchors,
                    num_anchors_per_level,
                    gt.gt_boxes.tensor,
                    gt.gt_classes,
                    valid_mask=valid[i],
                    grid_sizes=grid_sizes,
                    candidates=candidates,
                    **kwargs,
                ).matched_gt
                labels[branch].append(self._labels_from_matches(matched, gt.gt_classes))
                gt_boxes[branch].append(
                    self._boxes_from_matches(matched, gt.gt_boxes.tensor, anchors)
                )
        cls_labels = torch.stack(labels[0])
        reg_labels = torch.stack(labels[-1])
        # the last assignment is the regression one (or the shared one)
        reg_gt_boxes = torch.stack(gt_boxes[-1])
        cls_gt_boxes = torch.stack(gt_boxes[0]) if len(assigners) == 2 else reg_gt_boxes
        return cls_labels, reg_labels, reg_gt_boxes, cls_gt_boxes

    @staticmethod
    def _boxes_from_matches(matched: Tensor, gt_boxes: Tensor, anchors: Tensor) -> Tensor:
        """(R,) matches, (M, 4) GT boxes -> (R, 4) the matched GT box, zeros elsewhere."""
        fg = (matched >= 0)[:, None]
        if not len(gt_boxes):
            return anchors.new_zeros(anchors.shape)
        boxes = gt_boxes[matched.clamp(min=0)]
        return torch.where(fg, boxes.to(anchors.dtype), anchors.new_zeros(()))

    def _labels_from_matches(self, matched: Tensor, gt_classes: Tensor) -> Tensor:
        """(R,) assigner matches -> (R,) labels: -1 ignore, K background, else the GT's class.

        ``torch.where`` rather than masked writes: no data-dependent shapes, so no host-device
        synchronisation on a GPU.
        """
        background = torch.full_like(matched, self.num_classes)
        if len(gt_classes):
            label = torch.where(matched >= 0, gt_classes[matched.clamp(min=0)], background)
        else:
            label = background
        return torch.where(matched < BACKGROUND, torch.full_like(matched, -1), label)

    def _level_factors(self, branch: str, pos: Tensor, level_ids: Tensor) -> Tensor:
        """Per-level loss factors (L,) from this batch's positives ``pos`` (N, R)."""
        num_levels = len(self.head_in_features)
        if self.level_reweighting is None:
            return torch.ones(num_levels, device=pos.device)
        # per-level sums of the per-anchor positive counts (no nonzero(): no host sync)
        counts = torch.zeros(num_levels, dtype=torch.int64, device=pos.device)
        counts.index_add_(0, level_ids, pos.sum(dim=0))
        return self.level_reweighting(branch, counts).to(pos.device)

    def losses(
        self,
        anchors: Tensor,
        num_anchors_per_level: List[int],
        cls_logits: Tensor,
        bbox_deltas: Tensor,
        quality: Optional[Tensor],
        cls_labels: Tensor,
        reg_labels: Tensor,
        reg_gt_boxes: Tensor,
        cls_gt_boxes: Optional[Tensor] = None,
        init_deltas: Optional[Tensor] = None,
        distributions: Optional[Tensor] = None,
    ) -> Dict[str, Tensor]:
        """
        Args:
            anchors: (R, 4). cls_logits: (N, R, K). bbox_deltas: (N, R, 4) deltas of the scored
                box. quality: (N, R) or None.
            cls_labels, reg_labels: (N, R) labels of the two assignments (see label_anchors).
            reg_gt_boxes: (N, R, 4) ground truth of the regression positives.
            cls_gt_boxes: (N, R, 4) ground truth of the classification positives; needed by a
                classification loss with IoU targets (None: the assignment is shared, so
                ``reg_gt_boxes``).
            init_deltas: (N, R, 4) deltas of the initial box of a refining head, or None.
            distributions: (N, R, 4, n+1) box distribution logits (GFL), or None.

        Returns:
            {"loss_cls", "loss_bbox"}, "loss_bbox_init" with an initial box, "loss_dfl" with
            box distributions, and "loss_iou" or
            "loss_centerness" (by the quality target): each already normalised and weighted.
        """
        K = self.num_classes
        # (R,) level of each anchor; built from Python ints (repeat_interleave with a tensor
        # of repeats would wait for the GPU to learn the output size)
        level_ids = torch.cat([
            torch.full((n,), level, dtype=torch.int64, device=anchors.device)
            for level, n in enumerate(num_anchors_per_level)
        ])  # fmt: skip
        # Losses in fp32 whatever the autocast state: focal terms and IoUs lose too much in fp16.
        with torch.autocast(anchors.device.type, enabled=False):
            cls_logits = cls_logits.float()
            quality = quality.float() if quality is not None else None

            # classification on every valid anchor, targets of the cls assignment. Computed
            # densely and masked by a zero weight: nearly every anchor is valid, so gathering
            # the valid ones would copy almost all logits and cost a host sync.
            valid = cls_labels >= 0
            cls_pos = valid & (cls_labels != K)
            w_cls = self._level_factors("cls", cls_pos, level_ids)
            anchor_w = torch.where(valid, w_cls[level_ids][None, :], w_cls.new_zeros(()))
            iou_targets = None
            if self.cls_loss.needs_iou_targets:
                iou_targets = self._scored_box_iou(
                    bbox_deltas, anchors, reg_gt_boxes if cls_gt_boxes is None else cls_gt_boxes
                ).flatten()
            per_anchor = self.cls_loss(
                cls_logits.flatten(0, 1), cls_labels.clamp(min=0).flatten(), iou_targets
            )
            loss_cls = (per_anchor * anchor_w.flatten()).sum() / positive_normalizer(cls_pos)

            # regression: box loss and quality-branch BCE on the positives of the reg assignment
            reg_pos = (reg_labels >= 0) & (reg_labels != K)
            w_reg = self._level_factors("reg", reg_pos, level_ids)
            pos_idx = reg_pos.nonzero(as_tuple=True)
            anchor_w = w_reg[level_ids[pos_idx[1]]]
            normalizer_reg = positive_normalizer(reg_pos)
            pos_anchors = anchors[pos_idx[1]]
            gt_boxes = reg_gt_boxes[pos_idx]
            target_deltas = self.box2box_transform.get_deltas(pos_anchors, gt_boxes)
            # The reference regresses towards decode(encode(gt)): the GT up to the delta clamp.
            target_boxes = self._decode(target_deltas, pos_anchors)
            centerness = None
            if self.centerness_weighted_box_loss or self.quality_target == "centerness":
                points = (pos_anchors[:, :2] + pos_anchors[:, 2:]) / 2
                centerness = centerness_target(points, gt_boxes)

            score_weights = None
            if self.score_weighted_box_loss:
                # GFL: each positive's box terms weighted by its detached best class score
                score_weights = cls_logits[pos_idx].detach().sigmoid().max(dim=1).values

            def box_term(deltas, iou_weights=None):
                """The box loss of one box stage; with IoU weighting, by ``iou_weights`` or
                else by the stage's own IoU. Returns the loss, the decoded positives' boxes and
                the IoU weights used (None without IoU weighting)."""
                pos_deltas = deltas[pos_idx].float()
                pred_boxes = self._decode(pos_deltas, pos_anchors)
                if score_weights is not None:
                    iou_weights = score_weights  # same weighting: weights / their sum
                elif not self.iou_weighted_box_loss:
                    iou_weights = None
                elif iou_weights is None:
                    iou_weights = aligned_box_iou(pred_boxes.detach(), target_boxes)
                loss = weighted_box_loss(
                    pred_boxes, target_boxes, pos_deltas, target_deltas, anchor_w, normalizer_reg,
                    loss_type=self.box_reg_loss_type,
                    smooth_l1_beta=self.smooth_l1_beta,
                    centerness=centerness if self.centerness_weighted_box_loss else None,
                    iou_weights=iou_weights,
                    iou_sum_normalized=score_weights is not None
                    or self.iou_weighting == "own_iou",
                )  # fmt: skip
                return loss, pred_boxes, iou_weights

            loss_bbox, pred_boxes, scored_iou = box_term(bbox_deltas)
            losses = {
                "loss_cls": self.loss_cls_weight * loss_cls,
                "loss_bbox": self.loss_bbox_weight * loss_bbox,
            }
            if init_deltas is not None:
                # "scored_iou" (paper Eq. 3) weights the initial box by the scored box's IoU too
                shared = scored_iou if self.iou_weighting == "scored_iou" else None
                loss_init = box_term(init_deltas, shared)[0]
                losses["loss_bbox_init"] = self.loss_init_bbox_weight * loss_init
            if distributions is not None:
                per_box = self.box_distribution_loss(distributions[pos_idx], target_deltas)
                losses["loss_dfl"] = self.loss_box_distribution_weight * weighted_box_loss(
                    None, None, None, None, anchor_w, normalizer_reg,
                    per_box_loss=per_box, iou_weights=score_weights,
                )  # fmt: skip
            if quality is not None:
                if self.quality_target == "iou":
                    # Soft IoU target of the (detached) prediction: no gradient into the boxes.
                    target = aligned_box_iou(pred_boxes.detach(), target_boxes)
                elif self.quality_target == "giou":
                    # MOD: GIoU of the detached prediction, in [0, 1] (a negative BCE target
                    # would make the loss unbounded below; MOD's code clamps only at 1).
                    target = (1 - giou_loss_per_box(pred_boxes.detach(), target_boxes)).clamp(0, 1)
                else:
                    target = centerness
                bce = quality_bce_per_box(quality[pos_idx], target)
                name = "loss_centerness" if self.quality_target == "centerness" else "loss_iou"
                losses[name] = self.loss_quality_weight * (bce * anchor_w).sum() / normalizer_reg

        self._log_assignment_stats(cls_pos, reg_pos, w_cls, w_reg)
        return losses

    @torch.no_grad()
    def _scored_box_iou(self, bbox_deltas: Tensor, anchors: Tensor, gt_boxes: Tensor) -> Tensor:
        """IoU of every anchor's scored box with its assigned GT, no gradient: the IACS target
        of VarifocalLoss. (N, R, 4) deltas, (R, 4) anchors, (N, R, 4) GT (zeros where not
        foreground) -> (N, R); only the positives' values are read. Dense (no gather of the
        positives), like the classification loss itself."""
        pred = self._decode(bbox_deltas.detach().float(), anchors)
        return aligned_box_iou(pred, gt_boxes.float())

    def _log_assignment_stats(self, cls_pos: Tensor, reg_pos: Tensor, w_cls: Tensor, w_reg: Tensor):
        """Positives per image and level factors to the event storage: one device-to-host copy
        for all of them (per-value ``.item()`` calls would each wait for the GPU)."""
        num_images = cls_pos.shape[0]
        num_pos = torch.stack([cls_pos.sum(), reg_pos.sum()]).float() / num_images
        values = torch.cat([num_pos, w_cls.float(), w_reg.float()]).tolist()
        names = ["num_pos_cls", "num_pos_reg"]
        names += [f"level_weight/cls_{name}" for name in self.head_in_features]
        names += [f"level_weight/reg_{name}" for name in self.head_in_features]
        _put_scalars(**dict(zip(names, values)))

    # ------------------------------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------------------------------
    def forward_inference(self, images: ImageList, features, predictions) -> List[Instances]:
        candidates = self.candidates(features, predictions, images.image_sizes)
        return [
            self.detections(*per_image, image_size)
            for per_image, image_size in zip(candidates, images.image_sizes)
        ]

    def detections(
        self, boxes: Tensor, scores: Tensor, classes: Tensor, image_size: Tuple[int, int]
    ) -> Instances:
        """One image's (R, 4) candidate boxes, (R,) scores and (R,) classes -> Instances with
        ``pred_boxes``, ``scores``, ``pred_classes`` after post-processing (NMS), at most
        ``max_detections_per_image``."""
        boxes, scores, classes = self.postprocess(
            boxes, scores, classes, self.max_detections_per_image
        )
        result = Instances(image_size)
        result.pred_boxes = Boxes(boxes)
        result.scores = scores
        result.pred_classes = classes
        return result

    def candidates(
        self, features: List[Tensor], predictions, image_sizes: List[Tuple[int, int]]
    ) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """The scored candidates of every image, before post-processing (NMS): the hook that
        test-time augmentation merges across views.

        Args:
            features: the head's input levels; predictions: the head's outputs on them.
            image_sizes: (h, w) of each image in the network input.

        Returns:
            per image, (R, 4) boxes clipped to the image, (R,) scores and (R,) classes.
        """
        # the scored box only: a refining head's initial box is a training signal
        cls_logits, bbox_deltas, quality, _ = self._flatten_predictions(predictions)
        anchors = self.anchor_generator(features)
        return [
            self.candidates_single_image(
                anchors,
                [x[i] for x in cls_logits],
                [x[i] for x in bbox_deltas],
                [x[i] for x in quality] if quality else None,
                image_size,
            )
            for i, image_size in enumerate(image_sizes)
        ]

    def inference_single_image(
        self,
        anchors: List[Boxes],
        cls_logits: List[Tensor],
        bbox_deltas: List[Tensor],
        quality: Optional[List[Tensor]],
        image_size: Tuple[int, int],
    ) -> Instances:
        """
        Args:
            anchors: per level, Boxes of Rl anchors.
            cls_logits: per level (Rl, K); bbox_deltas: per level (Rl, 4); quality: per level
                (Rl,) or None.
            image_size: (h, w) of the image in the network input.

        Returns:
            Instances with ``pred_boxes``, ``scores``, ``pred_classes``, at most
            ``max_detections_per_image``, in network-input coordinates.
        """
        candidates = self.candidates_single_image(
            anchors, cls_logits, bbox_deltas, quality, image_size
        )
        return self.detections(*candidates, image_size)

    def detection_scores(self, cls_scores: Tensor, quality_logits: Optional[Tensor]) -> Tensor:
        """(P,) class probabilities of candidate pairs and (P,) quality logits of their anchors
        (None without a quality branch) -> (P,) detection scores, by ``test_score_mode``."""
        if self.test_score_mode == "cls":
            return cls_scores
        quality = quality_logits.float().sigmoid()
        if self.test_score_mode == "cls_x_quality":
            # DDOD ranks by cls x IoU probability, with no square root (unlike d2's FCOS).
            return cls_scores * quality
        # "sqrt_cls_x_quality", FCOS-imprv / MOD: the geometric mean of the two probabilities.
        return (cls_scores * quality).sqrt()

    def candidates_single_image(
        self,
        anchors: List[Boxes],
        cls_logits: List[Tensor],
        bbox_deltas: List[Tensor],
        quality: Optional[List[Tensor]],
        image_size: Tuple[int, int],
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """One image's candidates (arguments as :meth:`inference_single_image`): per level the
        ``test_topk_candidates`` best (anchor, class) pairs with sigmoid(cls) above
        ``test_score_thresh``, decoded, clipped, empty boxes dropped. Returns (R, 4) boxes,
        (R,) scores, (R,) classes."""
        boxes_all, scores_all, classes_all = [], [], []
        for level, (anchors_l, logits_l, deltas_l) in enumerate(
            zip(anchors, cls_logits, bbox_deltas)
        ):
            scores = logits_l.float().sigmoid().flatten()
            # Threshold on the classification score alone, then keep the best pairs.
            keep = (scores > self.test_score_thresh).nonzero(as_tuple=True)[0]
            scores = scores[keep]
            if keep.numel() > self.test_topk_candidates:
                scores, order = scores.topk(self.test_topk_candidates)
                keep = keep[order]
            anchor_idx = torch.div(keep, self.num_classes, rounding_mode="floor")
            classes = keep % self.num_classes
            boxes = self._decode(deltas_l[anchor_idx].float(), anchors_l.tensor[anchor_idx])
            scores = self.detection_scores(
                scores, quality[level][anchor_idx] if quality is not None else None
            )
            boxes_all.append(boxes)
            scores_all.append(scores)
            classes_all.append(classes)

        boxes = Boxes(cat(boxes_all))
        boxes.clip(image_size)
        scores, classes = cat(scores_all), cat(classes_all)
        nonempty = boxes.nonempty()
        return boxes.tensor[nonempty], scores[nonempty], classes[nonempty]
