"""Export of the detectors to TorchScript and ONNX (deformable convs as ONNX DeformConv, NMS in
the graph), and the check of an exported file against the eager model. Command line:
``tools/export_model.py``."""
from .api import (
    BOX_ATOL,
    FORMATS,
    ONNX_OPSET,
    SCORE_ATOL,
    compare_detections,
    eager_detections,
    export_model,
    load_exported,
)
from .wrapper import ExportableDetector, NotExportableError, check_exportable, letterbox

__all__ = [
    "ExportableDetector",
    "NotExportableError",
    "check_exportable",
    "letterbox",
    "export_model",
    "load_exported",
    "eager_detections",
    "compare_detections",
    "FORMATS",
    "ONNX_OPSET",
    "BOX_ATOL",
    "SCORE_ATOL",
]
