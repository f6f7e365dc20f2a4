from .scale import Scale
from .star_offsets import scale_gradient, star_dcn_offsets
from .tower import ConvNormAct, DeformConvNormAct, apply_deform_conv, build_conv_tower

__all__ = [
    "Scale",
    "ConvNormAct",
    "DeformConvNormAct",
    "apply_deform_conv",
    "build_conv_tower",
    "star_dcn_offsets",
    "scale_gradient",
]
