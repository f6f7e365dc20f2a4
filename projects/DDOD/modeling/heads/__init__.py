from .build import DENSE_HEAD_REGISTRY, build_dense_head
from .ddod_head import DDODHead

__all__ = ["DENSE_HEAD_REGISTRY", "build_dense_head", "DDODHead"]
