import math
from typing import List, Optional, Tuple

from torch import Tensor, nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec

from ..layers import Scale, build_conv_tower
from ..tscode import TaskContextDecoupler
from .build import DENSE_HEAD_REGISTRY

__all__ = ["DDODHead"]


@DENSE_HEAD_REGISTRY.register()
class DDODHead(nn.Module):
    """The DDOD head: two independent conv towers (classification, regression), each of which may
    start with a deformable conv, and three outputs.

    * ``cls_score`` on the classification tower: A*K sigmoid logits (no background channel);
    * ``bbox_pred`` on the regression tower: A*4 box deltas, times a learnable per-level scale;
    * ``quality`` on the regression tower: A logits of the predicted IoU of the box with its
      ground truth (DDOD replaces ATSS's centerness with this). Optional.

    The weights are shared by all FPN levels. The same head, configured, serves every base:

    * ATSS (IoU branch in place of centerness): ``cls_deform_index=reg_deform_index=None``;
    * FCOS*: the ``quality`` output is trained as centerness (the meta-architecture decides the
      target); points are one "anchor" per location;
    * RetinaNet: ``num_anchors=9, norm="", quality_branch=False, per_level_scale=False``;
    * DDOD on any of them: a deformable conv at ``cls_deform_index``/``reg_deform_index``;
    * TSCODE on any of them: ``tscode=TaskContextDecoupler(sce=..., dpe=...)`` (tscode/): the
      classification tower (and its deformable conv) runs on SCE's coarse input with a 4x wider
      predictor rearranged to each level's grid; the regression tower and quality branch run
      on DPE's input. Without it the head and its checkpoint keys are unchanged.
    """

    @configurable
    def __init__(
        self,
        *,
        input_shape: List[ShapeSpec],
        num_classes: int,
        num_anchors: int = 1,
        conv_dims: int = 256,
        num_convs: int = 4,
        norm: str = "GN",
        cls_deform_index: Optional[int] = 0,
        reg_deform_index: Optional[int] = 0,
        prior_prob: float = 0.01,
        quality_branch: bool = True,
        per_level_scale: bool = True,
        bbox_bias_init: float = 0.0,
        tscode: Optional[TaskContextDecoupler] = None,
        deform_modulated: bool = False,
        deform_bias: Optional[bool] = None,
    ):
        """
        Args:
            input_shape: shapes of the FPN levels the head runs on (all with the same channels).
            num_classes: number of foreground classes K.
            num_anchors: anchors per location A (1 for ATSS/DDOD).
            conv_dims: channels of the tower convs.
            num_convs: convs per tower.
            norm: normalisation after each tower conv ("GN", "BN", "" for none, ...).
            cls_deform_index, reg_deform_index: 0-based position of the deformable conv in the
                classification / regression tower (negative: from the end, -1 the last conv);
                None for a tower of plain convs.
            prior_prob: initial foreground probability of every classification output.
            quality_branch: whether to predict the quality logit (IoU or centerness).
            per_level_scale: multiply the box deltas by a learnable scalar per level (ATSS, FCOS,
                DDOD); RetinaNet has none.
            bbox_bias_init: initial bias of the box-delta outputs. 0 gives boxes equal to the
                anchors for XYWH deltas; with FCOS's l, t, r, b deltas in strides, a positive
                value (DDOD-FCOS uses 1.5) starts from boxes around the points, so a cost-based
                assigner sees non-zero IoUs from the first iteration.
            tscode: TSCODE's input encoders (None: the levels feed both towers as they are).
            deform_modulated: the deformable convs are modulated (DCNv2, with a sigmoid mask;
                MOD's RFA) instead of DCNv1 (DDOD).
            deform_bias: bias of the deformable convs; None: only without a norm (DDOD), True:
                MOD's RFA (bias, then GN).
        """
        super().__init__()
        in_channels = {s.channels for s in input_shape}
        if len(in_channels) != 1:
            raise ValueError(f"All FPN levels must have the same channels, got {in_channels}.")
        in_channels = in_channels.pop()
        self.num_classes = num_classes
        self.num_anchors = num_anchors
        self.num_levels = len(input_shape)

        self.tscode = tscode
        cls_in, cls_dims, cls_convs, upscale = in_channels, conv_dims, num_convs, 1
        if tscode is not None and tscode.sce_on:
            # SCE: the "shallow but wide" tower on the coarse input, 4 outputs per location
            cls_in, cls_dims = tscode.cls_in_channels, tscode.sce_conv_dims
            cls_convs, upscale = tscode.sce_num_convs, tscode.cls_upscale
        deform = dict(deform_modulated=deform_modulated, deform_bias=deform_bias)
        self.cls_tower = build_conv_tower(
            cls_in, cls_dims, cls_convs, norm=norm, deform_index=cls_deform_index, **deform
        )
        self.reg_tower = build_conv_tower(
            in_channels, conv_dims, num_convs, norm=norm, deform_index=reg_deform_index, **deform
        )
        self.cls_score = nn.Conv2d(cls_dims, upscale * num_anchors * num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(conv_dims, num_anchors * 4, 3, padding=1)
        self.quality = nn.Conv2d(conv_dims, num_anchors, 3, padding=1) if quality_branch else None
        # RetinaNet has no per-level scale: identity modules keep the forward uniform.
        self.scales = nn.ModuleList(
            [Scale(1.0) if per_level_scale else nn.Identity() for _ in range(self.num_levels)]
        )
        self._init_weights(prior_prob, bbox_bias_init)

    def _init_weights(self, prior_prob: float, bbox_bias_init: float):
        # Normal(0, 0.01) for every conv weight, zero biases, and a prior on the classification
        # bias so that training starts from p = prior_prob everywhere (RetinaNet's focal-loss
        # initialisation). The deformable convs' offset predictors stay at zero.
        for tower in (self.cls_tower, self.reg_tower):
            for block in tower:
                nn.init.normal_(block.conv.weight, std=0.01)
                if block.conv.bias is not None:
                    nn.init.zeros_(block.conv.bias)
        for layer in (self.cls_score, self.bbox_pred, self.quality):
            if layer is not None:
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.zeros_(layer.bias)
        nn.init.constant_(self.cls_score.bias, -math.log((1 - prior_prob) / prior_prob))
        nn.init.constant_(self.bbox_pred.bias, bbox_bias_init)

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        h = cfg.MODEL.DDOD
        return {
            "input_shape": input_shape,
            "num_classes": h.NUM_CLASSES,
            "num_anchors": len(cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS[0])
            * len(cfg.MODEL.ANCHOR_GENERATOR.SIZES[0]),
            "conv_dims": h.HEAD_CONV_DIMS,
            "num_convs": h.HEAD_NUM_CONVS,
            "norm": h.HEAD_NORM,
            "cls_deform_index": None if h.CLS_DEFORM_INDEX < 0 else h.CLS_DEFORM_INDEX,
            "reg_deform_index": None if h.REG_DEFORM_INDEX < 0 else h.REG_DEFORM_INDEX,
            "prior_prob": h.PRIOR_PROB,
            "quality_branch": h.QUALITY_TARGET != "none",
            "per_level_scale": h.HEAD_PER_LEVEL_SCALE,
            "bbox_bias_init": h.HEAD_BBOX_BIAS_INIT,
        }

    def forward(
        self, features: List[Tensor], below: Optional[Tensor] = None
    ) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
        """
        Args:
            features: FPN features, level l of shape (N, C, Hl, Wl), in increasing stride.
            below: the map under the first level (C2), read by TSCODE's DPE only.

        Returns:
            cls_logits: per level (N, A*K, Hl, Wl).
            bbox_deltas: per level (N, A*4, Hl, Wl), float32 (after the per-level scale).
            quality_logits: per level (N, A, Hl, Wl) logits of the IoU or centerness; an empty
                list without the quality branch.
        """
        if len(features) != self.num_levels:
            raise ValueError(f"Expected {self.num_levels} feature levels, got {len(features)}.")
        cls_inputs = reg_inputs = features
        if self.tscode is not None:
            cls_inputs, reg_inputs = self.tscode(features, below)
        cls_logits, bbox_deltas, quality_logits = [], [], []
        for level, x in enumerate(features):
            cls_feat = self.cls_tower(cls_inputs[level])
            reg_feat = self.reg_tower(reg_inputs[level])
            logits = self.cls_score(cls_feat)
            if self.tscode is not None:
                logits = self.tscode.cls_to_grid(logits, x)
            cls_logits.append(logits)
            # Deltas feed box decoding and the IoU cost; keep them in fp32 under autocast.
            bbox_deltas.append(self.scales[level](self.bbox_pred(reg_feat)).float())
            if self.quality is not None:
                quality_logits.append(self.quality(reg_feat))
        return cls_logits, bbox_deltas, quality_logits
