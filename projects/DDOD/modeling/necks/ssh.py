"""The SSH context module (Najibi et al., "SSH: Single Stage Headless Face Detector", ICCV
2017) as a neck: a Backbone that runs an FPN (or any backbone) and passes each of its outputs
through its own context module, so any detector config of this project can put it between FPN
and head::

    model.backbone = L(SSHNeck)(backbone=model.backbone, norm="GN")

The context module enlarges the receptive field of every location without changing the feature
size: three branches on the same input, concatenated (C/2 + C/4 + C/4 = C channels), then ReLU.

* one 3x3 conv (C/2 channels): the "detection module" part, receptive field 3x3;
* a shared 3x3 conv (C/4, ReLU), then a 3x3 conv (C/4): receptive field 5x5;
* the shared conv, a 3x3 conv (C/4, ReLU), a 3x3 conv (C/4): receptive field 7x7.

The 5x5 and 7x7 branches are stacked 3x3 convs sharing their first one, as in SSH and
RetinaFace. Each level gets its own module (RetinaFace's per-level SSH), with norm after every
conv (detectron2's ``get_norm``; RetinaFace uses BN).
"""
from typing import Dict, List, Optional

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import Backbone

__all__ = ["SSHContextModule", "SSHNeck"]


class SSHContextModule(nn.Module):
    """(N, C, H, W) -> (N, C, H, W); C must be a multiple of 4."""

    def __init__(self, channels: int, norm: str = "BN"):
        """
        Args:
            channels: C, input and output channels.
            norm: detectron2 norm name ("BN", "GN", "SyncBN", "" for none) after every conv.
        """
        super().__init__()
        if channels % 4:
            raise ValueError(f"SSH needs channels divisible by 4, got {channels}.")

        def conv(cin, cout):
            layer = Conv2d(
                cin, cout, 3, padding=1, bias=not norm, norm=get_norm(norm, cout)
            )
            weight_init.c2_msra_fill(layer)
            return layer

        quarter = channels // 4
        self.conv3x3 = conv(channels, channels // 2)
        self.context = conv(channels, quarter)  # shared by the 5x5 and 7x7 branches
        self.conv5x5 = conv(quarter, quarter)
        self.conv7x7_1 = conv(quarter, quarter)
        self.conv7x7_2 = conv(quarter, quarter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = F.relu(self.context(x))
        branch5 = self.conv5x5(context)
        branch7 = self.conv7x7_2(F.relu(self.conv7x7_1(context)))
        return F.relu(torch.cat([self.conv3x3(x), branch5, branch7], dim=1))


class SSHNeck(Backbone):
    """A backbone (usually an FPN) followed by one :class:`SSHContextModule` per output level.

    Output names, strides and channels are the wrapped backbone's, so the head and anchors of a
    config need no change.
    """

    def __init__(
        self, backbone: Backbone, *, in_features: Optional[List[str]] = None, norm: str = "BN"
    ):
        """
        Args:
            backbone: the wrapped backbone, e.g. an FPN.
            in_features: outputs to pass through SSH (default: every output); the others are
                returned unchanged.
            norm: norm of the SSH convs (see :class:`SSHContextModule`).
        """
        super().__init__()
        self.backbone = backbone
        shapes = backbone.output_shape()
        self.in_features = list(in_features) if in_features is not None else list(shapes)
        unknown = [f for f in self.in_features if f not in shapes]
        if unknown:
            raise ValueError(f"SSHNeck in_features {unknown} are not outputs of the backbone "
                             f"({list(shapes)}).")
        # ModuleDict keys: the level names ("p3", ...), one context module each
        self.ssh = nn.ModuleDict(
            {f: SSHContextModule(shapes[f].channels, norm=norm) for f in self.in_features}
        )

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        features = self.backbone(x)
        return {
            name: self.ssh[name](value) if name in self.ssh else value
            for name, value in features.items()
        }

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return self.backbone.output_shape()

    @property
    def size_divisibility(self) -> int:
        return self.backbone.size_divisibility

    @property
    def padding_constraints(self):
        return getattr(self.backbone, "padding_constraints", {})
