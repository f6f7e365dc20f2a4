from .scale import Scale
from .tower import ConvNormAct, DeformConvNormAct, build_conv_tower

__all__ = ["Scale", "ConvNormAct", "DeformConvNormAct", "build_conv_tower"]
