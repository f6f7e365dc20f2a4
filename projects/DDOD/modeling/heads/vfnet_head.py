"""The VarifocalNet head (Zhang et al., CVPR 2021, §4.3-4.5, Fig. 3).

Per FPN level (weights shared across levels)::

    x -> cls tower (3 x conv-GN-ReLU) -> cls_feat
    x -> reg tower (3 x conv-GN-ReLU) -> reg_feat
    reg_feat -> conv-GN-ReLU -> conv(4) -> x scale_l -> exp -> x reg_denom_l
             = initial box (l', t', r', b')
    initial box --(gradient x 0.1)--> star offsets (layers/star_offsets.py)
    reg_feat -> star DCN -> ReLU -> conv(4) -> x scale_refine_l -> exp = factors (dl, dt, dr, db)
    refined box = factors x detach(initial box)
    cls_feat -> star DCN -> ReLU -> conv(K) = IACS logits

The refined box multiplies the *detached* initial box, so the refined-box loss reaches the
initial-box conv only through the star offsets (scaled by 0.1). Boxes are distances in input
pixels from each location; decode them with ``Box2BoxTransformLTRB(normalize_by_size=False)``
around the anchor centres (one 8 x stride anchor per location at offset 0, as VFNet's ATSS).

Switches for the paper's component ladder (Table 3): ``star_dcn=False`` replaces both deformable
convs with plain 3x3 convs (no offsets); ``refine=False`` drops the refinement branch, so the
initial box is the scored box.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torchvision.ops import DeformConv2d

from detectron2.config import configurable
from detectron2.layers import ShapeSpec

from ..layers import Scale, apply_deform_conv, build_conv_tower, star_dcn_offsets
from ..layers.tower import ConvNormAct
from ..tscode import TaskContextDecoupler
from .build import DENSE_HEAD_REGISTRY

__all__ = ["VFNetHead"]


@DENSE_HEAD_REGISTRY.register()
class VFNetHead(nn.Module):
    """VarifocalNet's head: IACS logits and refined boxes from star-shaped deformable sampling.

    Output contract of the framework's dense heads (see ``heads/build.py``): ``(cls_logits,
    bbox_deltas, quality_logits, init_bbox_deltas)``; ``bbox_deltas`` is the box that is scored
    and returned (the refined one), ``quality_logits`` is empty (the IACS is the class score),
    and ``init_bbox_deltas`` is the initial box, trained by its own box loss (empty without
    ``refine``).
    """

    num_anchors = 1

    @configurable
    def __init__(
        self,
        *,
        input_shape: List[ShapeSpec],
        num_classes: int,
        strides: Sequence[int],
        reg_denoms: Optional[Sequence[float]] = (64, 128, 256, 512, 1024),
        conv_dims: int = 256,
        num_convs: int = 3,
        norm: str = "GN",
        star_dcn: bool = True,
        refine: bool = True,
        gradient_mul: float = 0.1,
        prior_prob: float = 0.01,
        tscode: Optional[TaskContextDecoupler] = None,
    ):
        """
        Args:
            input_shape: shapes of the FPN levels (all with the same channels).
            num_classes: number of foreground classes K.
            strides: stride of each level (pixels per cell), for the star offsets.
            reg_denoms: per-level multiplier of the exp'd box distances: the upper end of each
                FCOS regress range, the last one twice the previous (64 ... 1024). None uses the
                strides (the reference's ``bbox_norm_type="stride"``).
            conv_dims: channels of the tower convs.
            num_convs: convs per tower (3 in VFNet; 4 in VFNet-X).
            norm: normalisation of the tower convs and of the initial-box conv.
            star_dcn: sample the star points with deformable convs; False uses plain 3x3 convs.
            refine: predict refinement factors; False scores the initial box.
            gradient_mul: gradient factor from the star offsets into the initial box.
            prior_prob: initial foreground probability of every class output.
            tscode: TSCODE's input encoders, DPE only: the regression tower (initial box, star
                offsets, refinement) runs on DPE's input. SCE is refused: the classification
                star DCN samples at fine-grid offsets that SCE's coarse grid does not have.
        """
        super().__init__()
        in_channels = {s.channels for s in input_shape}
        if len(in_channels) != 1:
            raise ValueError(f"All FPN levels must have the same channels, got {in_channels}.")
        in_channels = in_channels.pop()
        self.num_levels = len(input_shape)
        if len(strides) != self.num_levels:
            raise ValueError(f"{len(strides)} strides for {self.num_levels} levels.")
        if reg_denoms is None:
            reg_denoms = strides
        if len(reg_denoms) != self.num_levels:
            raise ValueError(f"{len(reg_denoms)} reg_denoms for {self.num_levels} levels.")
        if refine and not star_dcn:
            raise ValueError("refine=True needs star_dcn=True: the refinement reads the star.")
        if tscode is not None and tscode.sce_on:
            raise ValueError(
                "VFNetHead supports TSCODE's DPE only (tscode.sce=False): its classification "
                "star DCN samples at offsets on the fine grid, which SCE's coarse input lacks."
            )
        self.tscode = tscode
        self.num_classes = num_classes
        self.strides = [float(s) for s in strides]
        self.reg_denoms = [float(d) for d in reg_denoms]
        self.star_dcn = star_dcn
        self.refine = refine
        self.gradient_mul = gradient_mul

        self.cls_tower = build_conv_tower(in_channels, conv_dims, num_convs, norm=norm)
        self.reg_tower = build_conv_tower(in_channels, conv_dims, num_convs, norm=norm)
        # initial box: one more conv-norm-ReLU on the reg tower, then 4 distances
        self.init_reg_conv = ConvNormAct(conv_dims, conv_dims, norm=norm)
        self.init_bbox_pred = nn.Conv2d(conv_dims, 4, 3, padding=1)
        # The two star-sampling convs: deformable with the star offsets, or plain convs for the
        # "no star DCN" ablation. No bias, no norm (a ReLU follows).
        conv_cls = DeformConv2d if star_dcn else nn.Conv2d
        self.cls_star_conv = conv_cls(conv_dims, conv_dims, 3, padding=1, bias=False)
        self.cls_score = nn.Conv2d(conv_dims, num_classes, 3, padding=1)
        if refine:
            self.refine_star_conv = DeformConv2d(conv_dims, conv_dims, 3, padding=1, bias=False)
            self.refine_pred = nn.Conv2d(conv_dims, 4, 3, padding=1)
        else:
            self.refine_star_conv = self.refine_pred = None
        self.scales = nn.ModuleList([Scale(1.0) for _ in range(self.num_levels)])
        self.refine_scales = (
            nn.ModuleList([Scale(1.0) for _ in range(self.num_levels)]) if refine else None
        )
        self._init_weights(prior_prob)

    def _init_weights(self, prior_prob: float):
        # The reference's init: normal(0, 0.01) weights and zero biases for every conv, the two
        # deformable convs included, and the classification prior in the cls bias.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, DeformConv2d)):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_score.bias, -math.log((1 - prior_prob) / prior_prob))

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        d, v = cfg.MODEL.DDOD, cfg.MODEL.VFNET
        return {
            "input_shape": input_shape,
            "num_classes": d.NUM_CLASSES,
            "strides": [s.stride for s in input_shape],
            "reg_denoms": list(v.REG_DENOMS) if v.REG_DENOMS else None,
            "conv_dims": d.HEAD_CONV_DIMS,
            "num_convs": d.HEAD_NUM_CONVS,
            "norm": d.HEAD_NORM,
            "star_dcn": v.STAR_DCN,
            "refine": v.REFINE,
            "gradient_mul": v.GRADIENT_MUL,
            "prior_prob": d.PRIOR_PROB,
        }

    def _star_conv(self, conv: nn.Module, x: Tensor, offset: Optional[Tensor]) -> Tensor:
        """3x3 conv of ``x`` (N, C, H, W) at the star points; a plain conv without offsets."""
        if offset is None:
            return conv(x)
        # same dtype as the features: under autocast the offsets are fp32 (they come from the
        # exp'd box) while x may be half (mmdetection#4172)
        return apply_deform_conv(conv, x, offset.to(x.dtype))

    def forward(
        self, features: List[Tensor], below: Optional[Tensor] = None
    ) -> Tuple[List[Tensor], List[Tensor], List[Tensor], List[Tensor]]:
        """
        Args:
            features: FPN features, level l of shape (N, C, Hl, Wl), in increasing stride.
            below: the map under the first level (C2), read by TSCODE's DPE only.

        Returns:
            cls_logits: per level (N, K, Hl, Wl) IACS logits.
            bbox_deltas: per level (N, 4, Hl, Wl) float32 distances (l, t, r, b) in pixels of the
                scored box (refined, or initial without ``refine``).
            quality_logits: [] (no quality branch).
            init_bbox_deltas: per level (N, 4, Hl, Wl) float32 initial box; [] without
                ``refine``.
        """
        if len(features) != self.num_levels:
            raise ValueError(f"Expected {self.num_levels} feature levels, got {len(features)}.")
        reg_inputs = features
        if self.tscode is not None:
            reg_inputs = self.tscode(features, below)[1]
        cls_logits, boxes, init_boxes = [], [], []
        for level, x in enumerate(features):
            cls_feat = self.cls_tower(x)
            reg_feat = self.reg_tower(reg_inputs[level])
            # exp in fp32: the distances reach 1000s of pixels and feed IoUs and offsets
            init_box = (
                self.scales[level](self.init_bbox_pred(self.init_reg_conv(reg_feat))).float().exp()
                * self.reg_denoms[level]
            )
            offset = None
            if self.star_dcn:
                offset = star_dcn_offsets(
                    init_box, self.strides[level], gradient_mul=self.gradient_mul
                )
            if self.refine:
                refine_feat = torch.relu(self._star_conv(self.refine_star_conv, reg_feat, offset))
                factors = self.refine_scales[level](self.refine_pred(refine_feat)).float().exp()
                boxes.append(factors * init_box.detach())
                init_boxes.append(init_box)
            else:
                boxes.append(init_box)
            cls_feat = torch.relu(self._star_conv(self.cls_star_conv, cls_feat, offset))
            cls_logits.append(self.cls_score(cls_feat))
        return cls_logits, boxes, [], init_boxes
