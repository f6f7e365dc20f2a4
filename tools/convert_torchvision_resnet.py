#!/usr/bin/env python
"""Convert a torchvision-layout ImageNet ResNet/ResNeXt file (torchvision, mmcv's
open-mmlab://resnext101_32x4d and _64x4d, timm) to a detectron2 .pkl that the X-101-32x4d /
X-101-64x4d configs (configs/common/models/backbones.py) start from.

Usage::

    python tools/convert_torchvision_resnet.py resnext101_64x4d-ee2c6f71.pth \\
        pretrained/resnext101_64x4d_d2.pkl

The stem is flipped to read BGR images (--keep-rgb to leave it); see
ddod/modeling/resnet_weights.py for the name mapping.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", help="torchvision-layout .pth file")
    parser.add_argument("output", help="detectron2 .pkl to write")
    parser.add_argument("--keep-rgb", action="store_true", help="do not flip the stem to BGR")
    args = parser.parse_args(argv)

    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import torch

    import train_net  # noqa: F401  (imports ddod from a fresh clone)
    from ddod.modeling.resnet_weights import save_detectron2_pkl, torchvision_to_detectron2

    state = torch.load(args.input, map_location="cpu", weights_only=True)
    weights = torchvision_to_detectron2(
        state, to_bgr=not args.keep_rgb, prefix="backbone.bottom_up."
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    author = f"converted from {os.path.basename(args.input)}"
    save_detectron2_pkl(weights, args.output, author=author)
    print(f"wrote {len(weights)} tensors to {args.output}")


if __name__ == "__main__":
    main()
