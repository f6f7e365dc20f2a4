#!/usr/bin/env python
"""GFLOPs and parameters of a config's detector at a given input size (fvcore's counter).

Counts the network (backbone, neck, head) on one random image of ``--height`` x ``--width``, as
the papers' tables do (no post-processing, no losses). One FLOP is one multiply-accumulate, as in
fvcore and mmdetection's counter. Unlike mmdetection's ``get_flops`` (which skips deformable
convs), deformable convs are counted (as the equivalent conv's multiply-accumulates), and
GroupNorm, nearest upsampling and pixel shuffle (0: it moves data) are all handled; element-wise
additions and activations are not counted (as in both counters).

Usage::

    python tools/flops.py --config-file configs/paper_tscode/table1_components/atss_both.py
    python tools/flops.py --config-file configs/gfl_R50_1x.py --height 800 --width 1333

Prints ``GFLOPs <total>`` then ``params(M) <count>`` and the per-module breakdown with
``--by-module``.
"""
import argparse
import os
import sys
from typing import Dict

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _import_ddod():
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import train_net  # noqa: F401  (imports ddod, which configs import)


def _zero_flops(inputs, outputs):
    return 0


def _deform_conv_flops(inputs, outputs):
    """torchvision::deform_conv2d(input, weight, offset, mask, bias, ...): the MACs of the
    equivalent conv (kernel taps x input channels per group, per output element)."""
    from fvcore.nn.jit_handles import get_shape

    weight = get_shape(inputs[1])  # (Cout, Cin / groups, kh, kw)
    out = get_shape(outputs[0])  # (N, Cout, H, W)
    return out[0] * out[1] * out[2] * out[3] * weight[1] * weight[2] * weight[3]


EXTRA_HANDLES = {
    "aten::pixel_shuffle": _zero_flops,
    "torchvision::deform_conv2d": _deform_conv_flops,
}


class _Network(nn.Module):
    """The detector's backbone and head as one traceable module: image -> head outputs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        m = self.model
        outputs = m.features_and_predictions((image - m.pixel_mean) / m.pixel_std)[1]
        return tuple(t for per_level in outputs for t in per_level)


def count(model, height: int = 800, width: int = 1280) -> Dict[str, float]:
    """{"gflops", "params_m", "by_module"} of ``model`` (a DDOD) on one height x width image."""
    from fvcore.nn import FlopCountAnalysis

    model.eval()
    network = _Network(model)
    image = torch.rand(1, 3, height, width) * 255
    analysis = FlopCountAnalysis(network, (image,))
    analysis.set_op_handle(**EXTRA_HANDLES)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        total = analysis.total()
        by_module = {k: v / 1e9 for k, v in analysis.by_module().items()}
    params = sum(p.numel() for p in model.parameters())
    return {"gflops": total / 1e9, "params_m": params / 1e6, "by_module": by_module}


def build_model(config_file: str, opts=()):
    _import_ddod()
    from detectron2.config import LazyConfig, instantiate

    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"--config-file {config_file!r}: no such file.")
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), list(opts))
    return instantiate(cfg.model)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--by-module", action="store_true", help="per top-level module too")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    result = count(build_model(args.config_file, args.opts), args.height, args.width)
    print(f"config {args.config_file} at {args.height}x{args.width}")
    print(f"GFLOPs {result['gflops']:.2f}")
    print(f"params(M) {result['params_m']:.2f}")
    if args.by_module:
        for name in ("model.backbone", "model.head", "model.head.tscode"):
            if name in result["by_module"]:
                print(f"  {name[6:]:<16} {result['by_module'][name]:.2f}")
    return result


if __name__ == "__main__":
    main()
