"""Export a detector to TorchScript or ONNX, run the exported file, and check it against eager.

* TorchScript: ``torch.jit.trace`` of :class:`ExportableDetector`; deformable convs are
  ``torchvision::deform_conv2d`` and NMS ``torchvision::nms`` (load with torchvision imported).
* ONNX: ``torch.onnx.export(..., dynamo=True)`` at opset >= 19; deformable convs become
  ``DeformConv`` and NMS ``NonMaxSuppression``, both run by onnxruntime's CPU provider. The
  older TorchScript-based ONNX exporter has no translation for deform_conv2d.
"""
import json
import os
import warnings
from typing import Callable, Dict, Tuple

import numpy as np
import torch
from torch import Tensor

from .wrapper import ExportableDetector

__all__ = [
    "FORMATS",
    "ONNX_OPSET",
    "BOX_ATOL",
    "SCORE_ATOL",
    "export_model",
    "load_exported",
    "eager_detections",
    "compare_detections",
]

FORMATS = ("torchscript", "onnx")
# ONNX DeformConv exists from opset 19 on.
ONNX_OPSET = 19
# Tolerances of the eager-vs-exported check. The eager CPU model computes deformable convs with
# the project's kernel (layers/deform_conv.py), the exported graph with torchvision's or
# onnxruntime's: float32 sums in another order, differences of ~1e-6 relative.
BOX_ATOL = 1e-2  # pixels
SCORE_ATOL = 1e-4

_FILENAMES = {"torchscript": "model.ts", "onnx": "model.onnx"}

Detections = Tuple[np.ndarray, np.ndarray, np.ndarray]


def export_model(
    model: torch.nn.Module, image: Tensor, fmt: str, output_dir: str, opset: int = ONNX_OPSET
) -> str:
    """Export ``model`` (a DDOD-family model, eval mode) for images of ``image``'s size (3, H, W)
    to ``output_dir``/model.ts or model.onnx, with an ``export.json`` describing the input.
    Returns the file's path. Raises ``NotExportableError`` for what cannot be exported."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}.")
    if opset < 19:
        raise ValueError(f"ONNX opset {opset} has no DeformConv; use 19 or later.")
    wrapper = ExportableDetector(model).eval()
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, _FILENAMES[fmt])
    with torch.no_grad(), warnings.catch_warnings():
        # tracer warnings about shapes turned into constants: the graph is for one input size
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            traced = torch.jit.trace(wrapper, (image,), check_trace=False)
            torch.jit.save(traced, path)
        else:
            torch.onnx.export(
                wrapper, (image,), path, opset_version=opset, dynamo=True,
                input_names=["image"], output_names=["boxes", "scores", "classes"],
                verbose=False,
            )  # fmt: skip
    inner = wrapper.model
    info = {
        "format": fmt,
        "file": os.path.basename(path),
        "input": {
            "name": "image",
            "shape": list(image.shape),
            "dtype": str(image.dtype).replace("torch.", ""),
            "format": inner.input_format,
            "note": "resize and pad images to this size (ddod.export.letterbox)",
        },
        "outputs": ["boxes (D, 4) XYXY pixels", "scores (D,)", "classes (D,) int64"],
        "num_classes": inner.num_classes,
    }
    if fmt == "onnx":
        info["opset"] = opset
    with open(os.path.join(output_dir, "export.json"), "w") as f:
        json.dump(info, f, indent=2)
    return path


def load_exported(path: str) -> Callable[[Tensor], Detections]:
    """A function running the exported file on a (3, H, W) image -> numpy (boxes, scores,
    classes): TorchScript in torch, ONNX in onnxruntime's CPU provider."""
    if path.endswith(".onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run(image: Tensor) -> Detections:
            return tuple(session.run(None, {name: image.cpu().numpy()}))

        return run
    import torchvision  # noqa: F401  (registers the torchvision ops the graph calls)

    module = torch.jit.load(path, map_location="cpu")

    def run(image: Tensor) -> Detections:
        with torch.no_grad():
            return tuple(t.numpy() for t in module(image))

    return run


@torch.no_grad()
def eager_detections(model: torch.nn.Module, image: Tensor) -> Detections:
    """The eager model's detections on one (3, H, W) image, through its usual forward."""
    inst = model([{"image": image}])[0]["instances"]
    return (
        inst.pred_boxes.tensor.numpy(),
        inst.scores.numpy(),
        inst.pred_classes.numpy(),
    )


def compare_detections(
    eager: Detections, exported: Detections, box_atol: float = BOX_ATOL,
    score_atol: float = SCORE_ATOL,
) -> Dict:  # fmt: skip
    """Whether two sets of detections are equal within the tolerances: the same count, and each
    eager detection has its own exported one of the same class, with every box coordinate within
    ``box_atol`` and the score within ``score_atol``. Matched as sets, not by position: scores
    that tie (or differ by float noise) may come out of two NMS implementations in either
    order. Returns {"equal", "count": (eager, exported), "unmatched" (eager detections without
    a partner), "max_box_diff", "max_score_diff" (over the matched pairs)}."""
    (b0, s0, c0), (b1, s1, c1) = eager, exported
    c0, c1 = c0.astype(np.int64), c1.astype(np.int64)
    used = np.zeros(len(s1), dtype=bool)
    unmatched, box_diff, score_diff = 0, 0.0, 0.0
    for i in range(len(s0)):
        db = np.abs(b1 - b0[i]).max(axis=1) if len(s1) else np.zeros(0)
        ds = np.abs(s1 - s0[i])
        ok = (~used) & (c1 == c0[i]) & (db <= box_atol) & (ds <= score_atol)
        if not ok.any():
            unmatched += 1
            continue
        j = int(np.flatnonzero(ok)[np.argmin(db[ok])])
        used[j] = True
        box_diff, score_diff = max(box_diff, float(db[j])), max(score_diff, float(ds[j]))
    return {
        "equal": unmatched == 0 and len(s0) == len(s1),
        "count": (len(s0), len(s1)),
        "unmatched": unmatched,
        "max_box_diff": box_diff,
        "max_score_diff": score_diff,
    }
