from .build import DENSE_HEAD_REGISTRY, build_dense_head
from .ddod_head import DDODHead
from .vfnet_head import VFNetHead
from .gfl_head import GFLHead

__all__ = ["DENSE_HEAD_REGISTRY", "build_dense_head", "DDODHead", "VFNetHead", "GFLHead"]
