"""Micro-benchmark of DDOD's CPU deformable conv next to a plain 3x3 convolution.

    python -m benchmarks.deform_conv_cpu                     # R50-FPN pyramid at 320x512, batch 2
    python -m benchmarks.deform_conv_cpu --batch 8 --runs 5
    python -m benchmarks.deform_conv_cpu --torchvision       # also torchvision's CPU kernel (slow)

One "call" runs the op on every FPN level of a 320x512 image (P3-P7: 40x64 ... 3x4), 256 -> 256
channels, 3x3 kernel, like one tower conv of the head. Rows:

* conv: ``F.conv2d`` (what ATSS runs in place of the deformable conv);
* ddod: ``deform_conv2d_cpu`` with random offsets (std 2 pixels: fractional, some outside);
* torchvision (optional): ``torchvision.ops.deform_conv2d`` on the CPU.

Columns: forward under ``no_grad`` and forward + backward (gradients of input, offsets and
weight), in fp32 and under bf16 CPU autocast (the inputs are then bf16, as the FPN's outputs
are under autocast; skipped where the CPU has no native bf16, see ddod.utils.cpu). Each figure
is the median of ``--runs`` timed calls after one warm-up;
the calls of all rows and columns are interleaved, so a slow spell of a shared machine hits
them alike. Run with ``OMP_WAIT_POLICY=PASSIVE`` (see benchmarks/run.py).
"""
import argparse
import os
import statistics
import time
import warnings

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ddod  # noqa: E402,F401  (compat patches before any detectron2 import)
from ddod.modeling.layers.deform_conv import deform_conv2d_cpu  # noqa: E402
from ddod.utils import cpu as cpu_info  # noqa: E402

LEVELS = [(40, 64), (20, 32), (10, 16), (5, 8), (3, 4)]  # P3-P7 of a 320x512 image


def _conv(x, offset, weight):
    return F.conv2d(x, weight, padding=1)


def _torchvision(x, offset, weight):
    from torchvision.ops import deform_conv2d

    with torch.autocast("cpu", enabled=False):
        return deform_conv2d(x.float(), offset.float(), weight, padding=1)


def make_call(op, inputs, weight, *, backward: bool, bf16: bool):
    """One call: ``op`` on every level, forward only or forward + backward."""

    def precision():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def fwd():
        with torch.no_grad(), precision():
            for x, offset in inputs:
                op(x, offset, weight)

    def fwd_bwd():
        with precision():
            loss = sum(op(x, offset, weight).float().sum() for x, offset in inputs)
        loss.backward()

    return fwd_bwd if backward else fwd


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--torchvision", action="store_true", help="also time torchvision's kernel")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    c = args.channels
    weight = (torch.randn(c, c, 3, 3, generator=g) * (2.0 / (9 * c)) ** 0.5).requires_grad_()
    inputs = {}
    for dtype in (torch.float32, torch.bfloat16):
        inputs[dtype] = [
            (
                torch.randn(args.batch, c, h, w, generator=g).to(dtype).requires_grad_(),
                (torch.randn(args.batch, 18, h, w, generator=g) * 2).to(dtype).requires_grad_(),
            )
            for h, w in LEVELS
        ]

    ops = {"conv": _conv, "ddod": deform_conv2d_cpu}
    if args.torchvision:
        ops["torchvision"] = _torchvision
    columns = {
        "fp32 fwd": (False, False),
        "fp32 fwd+bwd": (True, False),
        "bf16 fwd": (False, True),
        "bf16 fwd+bwd": (True, True),
    }
    # Emulated bf16 (no native instructions) would take minutes per call: skip those columns.
    bf16_ok = cpu_info.cpu_autocast_dtype("bf16 columns", fallback="skipped") is not None
    timed_columns = {col: v for col, v in columns.items() if bf16_ok or not v[1]}
    calls = {}
    for name, op in ops.items():
        for col, (backward, bf16) in timed_columns.items():
            dtype = torch.bfloat16 if bf16 else torch.float32
            calls[(name, col)] = make_call(op, inputs[dtype], weight, backward=backward, bf16=bf16)

    keys = list(calls)
    times = {key: [] for key in keys}
    for r in range(args.runs + 1):  # run 0 is the warm-up
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            t0 = time.perf_counter()
            calls[key]()
            if r:
                times[key].append(time.perf_counter() - t0)
            weight.grad = None
            for dtype_inputs in inputs.values():
                for x, offset in dtype_inputs:
                    x.grad = offset.grad = None

    shapes = ", ".join(f"{h}x{w}" for h, w in LEVELS)
    print(
        f"deformable conv vs conv2d, {c}->{c} channels, 3x3, batch {args.batch}, levels {shapes}; "
        f"median of {args.runs} runs, ms per call (all levels); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    print(f"CPU: {cpu_info.cpu_model()}; {cpu_info.cpu_description()}")
    print()
    header = "| op | " + " | ".join(columns) + " |"
    print(header)
    print("|" + "---|" * (len(columns) + 1))
    medians = {key: statistics.median(v) for key, v in times.items()}
    for name in ops:
        cells = []
        for col in columns:
            if col not in timed_columns:
                cells.append("skipped (no native bf16)")
                continue
            m = medians[(name, col)]
            ratio = m / medians[("conv", col)]
            cells.append(f"{m * 1e3:.1f}" + ("" if name == "conv" else f" ({ratio:.2f}x)"))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
