"""Cost of the stronger backbones (configs/common/models/backbones.py): parameters and GFLOPs of
each, and the CPU time of the deformable R-50 next to the plain R-50.

    python -m benchmarks.backbones                      # both tables, 800x1333, 3 timed runs
    python -m benchmarks.backbones --skip-timing        # parameters and GFLOPs only
    python -m benchmarks.backbones --skip-flops --runs 5 --size 512 853

What is measured is the ResNet (``model.backbone.bottom_up``, res3-res5 out, FrozenBN, stem and
res2 frozen as in the configs) on one image of ``--size`` (800x1333 by default, unpadded):

* parameters: every parameter of the ResNet (FrozenBN holds buffers, not parameters);
* GFLOPs: fvcore's ``FlopCountAnalysis`` (one multiply-add = one flop, fvcore's and mmcv's
  convention). torchvision's deformable conv has no fvcore handle; it is counted here as the
  plain conv of the same shape (the DCN convention of mmcv's and fvcore's counters), plus its
  offset conv, which fvcore counts itself. The bilinear sampling is not counted;
* time: forward under ``no_grad`` and forward + backward (of the sum of the outputs) of R-50
  and R-50-DCN (DCNv2 in res3-res5), batch 1, median of ``--runs`` interleaved runs after one
  warm-up, in wall seconds and in CPU seconds of the process (all its threads). The DCN runs
  on torchvision's CPU kernel, whose backward is a scalar loop. Run with
  ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine (see benchmarks/run.py).
"""
import argparse
import os
import statistics
import time
import warnings

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)

import torch  # noqa: E402

import ddod  # noqa: E402,F401  (compat patches before any detectron2 import)
from detectron2.modeling.backbone import BasicStem, ResNet  # noqa: E402

from ddod.modeling import make_resnet_stages  # noqa: E402
from ddod.utils import cpu as cpu_info  # noqa: E402

# name -> make_resnet_stages arguments (configs/common/models/backbones.py's BACKBONES)
BACKBONES = {
    "R-50": dict(depth=50),
    "R-101": dict(depth=101),
    "X-101-32x4d": dict(depth=101, num_groups=32, width_per_group=4),
    "X-101-64x4d": dict(depth=101, num_groups=64, width_per_group=4),
    "X-101-32x8d": dict(depth=101, num_groups=32, width_per_group=8),
}
DCN = dict(deform_on_per_stage=[False, True, True, True], deform_modulated=True)


def build(name: str, dcn: bool, base_channels: int = 64) -> ResNet:
    """The ResNet of a config with backbone ``name`` (+ DCNv2 in res3-res5 if ``dcn``); every
    width x ``base_channels / 64``."""
    kwargs = dict(BACKBONES[name], **(DCN if dcn else {}))
    return ResNet(
        BasicStem(3, base_channels, norm="FrozenBN"),
        make_resnet_stages(
            norm="FrozenBN",
            stride_in_1x1=not name.startswith("X"),
            base_channels=base_channels,
            **kwargs,
        ),
        out_features=["res3", "res4", "res5"],
        freeze_at=2,
    ).eval()


def _deform_conv_flops(inputs, outputs):
    """fvcore handle for torchvision::deform_conv2d: the multiply-adds of the plain conv."""
    from fvcore.nn.jit_handles import get_shape

    # schema: (input, weight, offset, mask, bias, stride, padding, dilation, groups, ...)
    weight = get_shape(inputs[1])  # (Cout, Cin / groups, kh, kw)
    out = get_shape(outputs[0])  # (N, Cout, Ho, Wo)
    return out[0] * out[1] * out[2] * out[3] * weight[1] * weight[2] * weight[3]


def count(name: str, dcn: bool, size, base_channels: int = 64):
    """(millions of parameters, GFLOPs at ``size``) of a backbone."""
    from fvcore.nn import FlopCountAnalysis

    model = build(name, dcn, base_channels)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    flops = FlopCountAnalysis(model, torch.zeros(1, 3, *size))
    flops.set_op_handle("torchvision::deform_conv2d", _deform_conv_flops)
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        return params, flops.total() / 1e9


def time_r50(size, runs: int, base_channels: int = 64):
    """{(backbone, column): [(wall seconds, CPU seconds of this process)]} for R-50 and
    R-50-DCN, forward / forward + backward."""
    x = torch.randn(1, 3, *size)
    models = {n: build("R-50", n.endswith("DCN"), base_channels) for n in ("R-50", "R-50-DCN")}
    for m in models.values():
        m.train()  # FrozenBN: the same in train and eval; res3-res5 get gradients

    def fwd(m):
        def call():
            with torch.no_grad():
                m(x)

        return call

    def fwd_bwd(m):
        def call():
            sum(v.sum() for v in m(x).values()).backward()
            m.zero_grad(set_to_none=True)

        return call

    calls = {}
    for name, m in models.items():
        calls[(name, "fwd")] = fwd(m)
        calls[(name, "fwd+bwd")] = fwd_bwd(m)
    keys = list(calls)
    times = {k: [] for k in keys}
    for r in range(runs + 1):  # run 0 is the warm-up; rotated order, as benchmarks/common.py
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            t0, c0 = time.perf_counter(), time.process_time()
            calls[key]()
            if r:
                times[key].append((time.perf_counter() - t0, time.process_time() - c0))
    return times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, nargs=2, default=(800, 1333), metavar=("H", "W"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--skip-flops", action="store_true")
    p.add_argument("--skip-timing", action="store_true")
    p.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    p.add_argument(
        "--base-channels", type=int, default=64, help="64: the real networks; less: a quick check"
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = args.size
    print(
        f"ResNet backbones (bottom-up, res3-res5 out, FrozenBN, base width {args.base_channels}), "
        f"one {h}x{w} image; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    print(f"CPU: {cpu_info.cpu_model()}; {cpu_info.cpu_description()}")
    results = {}
    if not args.skip_flops:
        print()
        print("| backbone | params (M) | GFLOPs | DCN params (M) | DCN GFLOPs |")
        print("|---|---|---|---|---|")
        for name in args.backbones:
            plain, dcn = (count(name, d, args.size, args.base_channels) for d in (False, True))
            results[name] = {"plain": plain, "dcn": dcn}
            print(f"| {name} | {plain[0]:.1f} | {plain[1]:.1f} | {dcn[0]:.1f} | {dcn[1]:.1f} |")
    if not args.skip_timing:
        times = time_r50(args.size, args.runs, args.base_channels)
        # medians of wall and of CPU time (the process's, all threads: on a shared machine it
        # is the steadier of the two, the wall time grows with the other processes' load)
        med = {
            k: tuple(statistics.median(t[i] for t in v) for i in (0, 1)) for k, v in times.items()
        }
        cols = [(c, i) for c in ("fwd", "fwd+bwd") for i in (0, 1)]
        print()
        load = os.getloadavg()[0]
        print(f"seconds per image, median of {args.runs} runs; load average {load:.1f}")
        print()
        print("| backbone | fwd wall | fwd CPU | fwd+bwd wall | fwd+bwd CPU |")
        print("|---|---|---|---|---|")
        for name in ("R-50", "R-50-DCN"):
            print(f"| {name} | " + " | ".join(f"{med[(name, c)][i]:.2f}" for c, i in cols) + " |")
        ratio = [med[("R-50-DCN", c)][i] / med[("R-50", c)][i] for c, i in cols]
        print("| ratio | " + " | ".join(f"{r:.2f}x" for r in ratio) + " |")
        results["timing"] = med
    return results


if __name__ == "__main__":
    main()
