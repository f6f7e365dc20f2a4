"""DDOD: Disentangle Your Dense Object Detector, and related dense detectors, for Detectron2.

Importing this package registers the meta-architectures (``META_ARCH_REGISTRY``), the dense heads
(``DENSE_HEAD_REGISTRY``), the backbones (``BACKBONE_REGISTRY``) and the built-in dataset.
"""
from . import compat

compat.apply()  # must run before any detectron2 submodule is imported

from .config import add_ddod_config, add_vfnet_config  # noqa: E402
from .modeling import *  # noqa: E402,F401,F403
from . import data as _data  # noqa: E402,F401  (registers the built-in datasets)

__version__ = "0.1.0"
