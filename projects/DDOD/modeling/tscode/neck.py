"""An FPN that also returns bottom-up features (for TSCODE's DPE at P3, which reads res2)."""
from typing import Dict, Sequence

from torch import Tensor, nn

import fvcore.nn.weight_init as weight_init
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import FPN

__all__ = ["FPNWithBottomUp"]


class FPNWithBottomUp(FPN):
    """Detectron2's FPN whose outputs also include the bottom-up features ``extra_features``
    (e.g. ``["res2"]``), which the FPN itself does not fuse.

    TSCODE's DPE computes level 3 from C2, P3 and P4 ("we compute G_3^loc with C_2, P_3 and
    P_4"); adding C2 needs it at the FPN's width. The paper's GFLOPs imply C2 is added raw (no
    lateral conv: spec §2.6), which is right for R-50/101 and ResNeXt (res2 is 256 wide). For a
    bottom-up network whose feature is narrower or wider than the FPN (R-18/34, the CPU-sized
    quickstart ResNets), a 1x1 conv ``extra_proj_<name>`` projects it: our extension.

    The bottom-up network must list ``extra_features`` in its ``out_features`` (it is run once:
    the features are taken from its output, not recomputed). With ``extra_features=[]`` this is
    the plain FPN, with the same checkpoint keys.

    Output: the FPN's ``p*`` maps plus each extra feature (N, out_channels, H, W) under its own
    name, with its bottom-up stride.
    """

    def __init__(self, *, extra_features: Sequence[str] = ("res2",), **fpn_kwargs):
        """
        Args:
            extra_features: bottom-up outputs to hand through (after projection if needed).
            fpn_kwargs: detectron2's ``FPN`` arguments (bottom_up, in_features, out_channels,
                norm, top_block, fuse_type).
        """
        super().__init__(**fpn_kwargs)
        bottom_up_shapes = self.bottom_up.output_shape()
        out_channels = fpn_kwargs["out_channels"]
        self.extra_features = list(extra_features)
        self.extra_projections = nn.ModuleDict()
        for name in self.extra_features:
            if name not in bottom_up_shapes:
                raise ValueError(
                    f"FPNWithBottomUp: extra feature {name!r} is not an output of the bottom-up "
                    f"network (its out_features: {sorted(bottom_up_shapes)}); add it there."
                )
            shape = bottom_up_shapes[name]
            if shape.channels != out_channels:
                proj = nn.Conv2d(shape.channels, out_channels, 1)
                weight_init.c2_xavier_fill(proj)
                self.extra_projections[name] = proj
            self._out_feature_strides[name] = shape.stride
            self._out_feature_channels[name] = out_channels
        self._extra = None
        # FPN.forward calls the bottom-up network itself and keeps only its in_features; this
        # hook keeps the extra ones from that same call, so nothing is computed twice and the
        # FPN computation stays detectron2's own.
        self.bottom_up.register_forward_hook(self._keep_extra)

    def _keep_extra(self, module, inputs, outputs: Dict[str, Tensor]):
        self._extra = {name: outputs[name] for name in self.extra_features}

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        results = super().forward(x)
        extra, self._extra = self._extra, None  # do not keep activations alive between calls
        for name in self.extra_features:
            feature = extra[name]
            if name in self.extra_projections:
                feature = self.extra_projections[name](feature)
            results[name] = feature
        return results

    def output_shape(self) -> Dict[str, ShapeSpec]:
        shapes = super().output_shape()
        for name in self.extra_features:
            shapes[name] = ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
        return shapes
