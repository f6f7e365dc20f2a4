"""The Generalized Focal Loss head (Li et al., NeurIPS 2020), in the framework's head contract.

Per FPN level (weights shared across levels)::

    x -> cls tower (4 x conv-GN-ReLU) -> conv(K)              = joint class-IoU score logits
    x -> reg tower (4 x conv-GN-ReLU) -> conv(4 (n + 1)) x scale_l = box distribution logits
    box distances (l, t, r, b) = sum_i softmax(logits)_i * i   (the integral, i = 0..n)

``n = reg_max`` (16). The distances are in units of the level's stride; with ATSS's one
8 x stride anchor per location decode them with ``Box2BoxTransformLTRB(size_divisor=8)`` (the
anchor's side / 8 = the stride), so assignment and inference are the host framework's. The
score is the classification output itself (quality focal loss trains it towards the IoU), so
there is no separate quality branch; the distribution logits are the fifth output, trained by
the detector's ``box_distribution_loss`` (distribution focal loss).

DDOD's spatial disentanglement (``cls_deform_index``/``reg_deform_index``) and TSCODE
(``tscode``) plug in exactly as on :class:`DDODHead`.
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detectron2.layers import ShapeSpec

from ..layers import Scale, build_conv_tower
from ..tscode import TaskContextDecoupler

__all__ = ["GFLHead", "distribution_integral"]


def distribution_integral(logits: Tensor, reg_max: int) -> Tensor:
    """The expectation of each side's discrete distribution.

    Args:
        logits: (N, 4 * (reg_max + 1), H, W), side-major channels (side * (reg_max + 1) + bin).

    Returns:
        (N, 4, H, W) float32 distances in [0, reg_max].
    """
    n, _, h, w = logits.shape
    probs = F.softmax(logits.float().view(n, 4, reg_max + 1, h, w), dim=2)
    bins = torch.arange(reg_max + 1, dtype=probs.dtype, device=probs.device)
    return (probs * bins.view(1, 1, -1, 1, 1)).sum(dim=2)


class GFLHead(nn.Module):
    """GFL's head. Outputs (heads/build.py contract): ``(cls_logits, bbox_deltas, [], [],
    box_distribution_logits)``."""

    num_anchors = 1
    quality = None  # the class score is the quality (QFL): no separate branch

    def __init__(
        self,
        *,
        input_shape: List[ShapeSpec],
        num_classes: int,
        reg_max: int = 16,
        conv_dims: int = 256,
        num_convs: int = 4,
        norm: str = "GN",
        cls_deform_index: Optional[int] = None,
        reg_deform_index: Optional[int] = None,
        prior_prob: float = 0.01,
        tscode: Optional[TaskContextDecoupler] = None,
    ):
        """
        Args:
            input_shape: shapes of the FPN levels (all with the same channels).
            num_classes: number of foreground classes K.
            reg_max: largest distance of the distribution, in strides (GFL's 16: bins 0..16).
            conv_dims, num_convs, norm: the two towers (256, 4, GN in GFL).
            cls_deform_index, reg_deform_index: DDOD's deformable conv position per tower, or
                None (GFL).
            prior_prob: initial foreground probability of every class output.
            tscode: TSCODE's input encoders, or None.
        """
        super().__init__()
        in_channels = {s.channels for s in input_shape}
        if len(in_channels) != 1:
            raise ValueError(f"All FPN levels must have the same channels, got {in_channels}.")
        in_channels = in_channels.pop()
        if reg_max < 1:
            raise ValueError(f"reg_max must be >= 1, got {reg_max}.")
        self.num_classes = num_classes
        self.num_levels = len(input_shape)
        self.reg_max = reg_max
        self.tscode = tscode
        cls_in, cls_dims, cls_convs, upscale = in_channels, conv_dims, num_convs, 1
        if tscode is not None and tscode.sce_on:
            cls_in, cls_dims = tscode.cls_in_channels, tscode.sce_conv_dims
            cls_convs, upscale = tscode.sce_num_convs, tscode.cls_upscale
        self.cls_tower = build_conv_tower(
            cls_in, cls_dims, cls_convs, norm=norm, deform_index=cls_deform_index
        )
        self.reg_tower = build_conv_tower(
            in_channels, conv_dims, num_convs, norm=norm, deform_index=reg_deform_index
        )
        self.cls_score = nn.Conv2d(cls_dims, upscale * num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(conv_dims, 4 * (reg_max + 1), 3, padding=1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in range(self.num_levels)])
        for tower in (self.cls_tower, self.reg_tower):
            for block in tower:
                nn.init.normal_(block.conv.weight, std=0.01)
                if block.conv.bias is not None:
                    nn.init.zeros_(block.conv.bias)
        for layer in (self.cls_score, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        nn.init.constant_(self.cls_score.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(
        self, features: List[Tensor], below: Optional[Tensor] = None
    ) -> Tuple[List[Tensor], List[Tensor], List[Tensor], List[Tensor], List[Tensor]]:
        """
        Args:
            features: FPN features, level l of shape (N, C, Hl, Wl), in increasing stride.
            below: the map under the first level (C2), read by TSCODE's DPE only.

        Returns:
            cls_logits: per level (N, K, Hl, Wl) joint class-IoU logits.
            bbox_deltas: per level (N, 4, Hl, Wl) float32 distances (l, t, r, b) in strides
                (the integral of the distribution).
            [], []: no quality branch, no initial box.
            box_distribution_logits: per level (N, 4 * (reg_max + 1), Hl, Wl) float32.
        """
        if len(features) != self.num_levels:
            raise ValueError(f"Expected {self.num_levels} feature levels, got {len(features)}.")
        cls_inputs = reg_inputs = features
        if self.tscode is not None:
            cls_inputs, reg_inputs = self.tscode(features, below)
        cls_logits, distances, distributions = [], [], []
        for level, x in enumerate(features):
            logits = self.cls_score(self.cls_tower(cls_inputs[level]))
            if self.tscode is not None:
                logits = self.tscode.cls_to_grid(logits, x)
            cls_logits.append(logits)
            dist = self.scales[level](self.bbox_pred(self.reg_tower(reg_inputs[level]))).float()
            distributions.append(dist)
            distances.append(distribution_integral(dist, self.reg_max))
        return cls_logits, distances, [], [], distributions
