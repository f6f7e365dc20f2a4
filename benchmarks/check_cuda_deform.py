"""Check that DDOD's deformable head computes the same thing on CUDA as on the CPU.

On the CPU, ``DeformConvNormAct`` runs ``deform_conv2d_cpu`` (an embedding_bag gather + a GEMM); on
CUDA it runs torchvision's ``deform_conv2d`` kernel. This script runs one head (and one bare
deformable conv) on both, with the same weights, inputs and output gradients, and compares
forward outputs and the gradients of every parameter and input.

    python -m benchmarks.check_cuda_deform                 # CPU vs CUDA (needs a GPU)
    python -m benchmarks.check_cuda_deform --target cpu-torchvision --channels 32
        # our CPU op vs torchvision's CPU kernel: exercises this script without a GPU

The offset convs, zero-initialised in the model, get random weights here, so the sampling
points are fractional, several pixels away, and partly outside the feature map (at integer
positions the offset gradient is one-sided and two correct kernels may differ). GroupNorm
weights and biases are random too, so no ReLU input sits at exactly zero. TF32 is off for
the fp32 comparison. Errors are max |target - reference| / max |reference| per tensor.
Exit status: 0 if every tensor is within tolerance or CUDA is absent (the check is skipped,
with a message), 1 otherwise.
"""
import argparse
import copy
import sys
import types
import warnings

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)

import torch  # noqa: E402
from torchvision.ops import deform_conv2d  # noqa: E402

import ddod  # noqa: E402,F401
from detectron2.layers import ShapeSpec  # noqa: E402

from ddod.modeling import DDODHead  # noqa: E402
from ddod.modeling.layers.deform_conv import deform_conv2d_cpu  # noqa: E402
from ddod.modeling.layers.tower import DeformConvNormAct  # noqa: E402


def _torchvision_forward(self, x):
    """DeformConvNormAct.forward with torchvision's op on any device (--target cpu-torchvision)."""
    offset = self.conv_offset(x)
    x = self.conv(x, offset)
    if self.norm is not None:
        x = self.norm(x)
    return torch.relu(x)


def rel_error(target: torch.Tensor, ref: torch.Tensor) -> float:
    target = target.detach().float().cpu()
    ref = ref.detach().float().cpu()
    scale = ref.abs().max().item()
    return (target - ref).abs().max().item() / max(scale, 1e-12)


def make_head(channels: int, seed: int) -> DDODHead:
    torch.manual_seed(seed)
    head = DDODHead(
        input_shape=[ShapeSpec(channels=channels)] * 5,
        num_classes=80,
        conv_dims=channels,
        num_convs=4,
        norm="GN" if channels % 32 == 0 else "",
    )
    with torch.no_grad():
        for m in head.modules():
            if isinstance(m, DeformConvNormAct):
                # offsets of a few pixels, fractional, some pointing outside the map
                m.conv_offset.weight.normal_(0, 2.0 / (m.conv_offset.in_channels * 9) ** 0.5)
                m.conv_offset.bias.uniform_(-1.5, 1.5)
        for s in head.scales:
            s.scale.uniform_(0.5, 1.5)
        # Random norm affine parameters: with the default zero bias, a group whose normalised
        # values are all ~0 (e.g. a 1x1 map) puts ReLU on its knife edge, where rounding decides.
        for m in head.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.5)
    return head


def run_head(head, features, grads, device, *, autocast: bool, torchvision_op: bool):
    head = copy.deepcopy(head).to(device)
    if torchvision_op:
        for m in head.modules():
            if isinstance(m, DeformConvNormAct):
                m.forward = types.MethodType(_torchvision_forward, m)
    feats = [f.detach().clone().to(device).requires_grad_() for f in features]
    with torch.autocast(device.type, dtype=torch.float16, enabled=autocast):
        cls, box, quality = head(feats)
    outputs = list(cls) + list(box) + list(quality)
    loss = sum((o.float() * g.to(device)).sum() for o, g in zip(outputs, grads))
    loss.backward()
    named = {}
    for i, o in enumerate(outputs):
        kind = ("cls", "bbox", "quality")[i // 5]
        named[f"out/{kind}/p{3 + i % 5}"] = o
    for i, f in enumerate(feats):
        named[f"grad/input/p{3 + i}"] = f.grad
    for name, p in head.named_parameters():
        named[f"grad/{name}"] = p.grad if p.grad is not None else torch.zeros_like(p)
    return named


def check_single_op(device_ref, device_tgt, torchvision_op, seed=0):
    """One deformable conv with large offsets: our CPU op on the reference device vs the target."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 16, 13, 17, generator=g)
    offset = torch.randn(2, 18, 13, 17, generator=g) * 3.0 + 0.3
    weight = torch.randn(24, 16, 3, 3, generator=g) * 0.1
    bias = torch.randn(24, generator=g)
    grad_out = torch.randn(2, 24, 13, 17, generator=g)

    def run(device, use_tv):
        ts = [t.clone().to(device).requires_grad_() for t in (x, offset, weight, bias)]
        if use_tv:
            out = deform_conv2d(ts[0], ts[1], ts[2], ts[3], padding=1)
        else:
            out = deform_conv2d_cpu(ts[0], ts[1], ts[2], ts[3], padding=1)
        (out * grad_out.to(device)).sum().backward()
        return {"op/out": out, "op/grad_x": ts[0].grad, "op/grad_offset": ts[1].grad,
                "op/grad_weight": ts[2].grad, "op/grad_bias": ts[3].grad}  # fmt: skip

    ref = run(device_ref, False)
    tgt = run(device_tgt, device_tgt.type == "cuda" or torchvision_op)
    return {k: rel_error(tgt[k], ref[k]) for k in ref}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", choices=["cuda", "cpu-torchvision"], default="cuda")
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", default="64x96", help="P3 HEIGHTxWIDTH; P4-P7 halve it")
    p.add_argument("--tol", type=float, default=1e-3, help="fp32 tolerance (relative to max |ref|)")
    p.add_argument("--amp-tol", type=float, default=3e-2, help="fp16-autocast tolerance (CUDA)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    if args.target == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available on this machine: the CUDA-vs-CPU check of the deformable head "
              "was skipped (run it where a GPU is present; --target cpu-torchvision checks the "
              "script itself on the CPU).")  # fmt: skip
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cpu = torch.device("cpu")
    target = torch.device("cuda") if args.target == "cuda" else cpu
    torchvision_op = args.target == "cpu-torchvision"

    h, w = (int(v) for v in args.size.lower().split("x"))
    g = torch.Generator().manual_seed(args.seed + 1)
    shapes = [(args.batch, args.channels, max(1, h >> i), max(1, w >> i)) for i in range(5)]
    features = [torch.randn(s, generator=g) for s in shapes]
    head = make_head(args.channels, args.seed)
    out_shapes = [(args.batch, c, s[2], s[3]) for c in (80, 4, 1) for s in shapes]
    grads = [torch.randn(s, generator=g) for s in out_shapes]

    checks = [("fp32", False, args.tol)]
    if target.type == "cuda":
        checks.append(("fp16 autocast", True, args.amp_tol))

    op = " (torchvision deform_conv2d)" if target.type == "cuda" or torchvision_op else ""
    print(f"reference: CPU (our deformable conv); target: {args.target}{op}")
    if target.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(target)}, torch {torch.__version__}")
    print(f"head: {args.channels} channels, 4 convs per tower, GN, batch {args.batch}, P3 {h}x{w}")
    failed = False
    ref = run_head(head, features, grads, cpu, autocast=False, torchvision_op=False)
    for label, autocast, tol in checks:
        tgt = run_head(
            head, features, grads, target, autocast=autocast, torchvision_op=torchvision_op
        )
        errors = {k: rel_error(tgt[k], ref[k]) for k in ref}
        if not autocast:
            errors.update(check_single_op(cpu, target, torchvision_op, seed=args.seed))
        worst = sorted(errors.items(), key=lambda kv: -kv[1])
        bad = [k for k, e in worst if not e <= tol]
        failed |= bool(bad)
        print(f"\n[{label}] {len(errors)} tensors, tolerance {tol:g}: "
              f"{'OK' if not bad else f'{len(bad)} MISMATCH(ES)'}")  # fmt: skip
        for k, e in worst[:8]:
            print(f"  {e:.2e}  {k}{'  <-- over tolerance' if k in bad else ''}")
        for k in (n for n in ("out/cls/p3", "out/bbox/p3", "grad/input/p3") if n in errors):
            print(f"  {errors[k]:.2e}  {k}")
    print("\nRESULT:", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
