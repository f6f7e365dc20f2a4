"""Deformable convolution (DCNv1) for the CPU: an ``embedding_bag`` gather and a 1x1-conv GEMM.

torchvision's ``deform_conv2d`` is the reference op and is what runs on CUDA. Its CPU backward,
however, is a slow scalar loop: on the 2-core machine this project is developed on it took about
two thirds of a whole DDOD training step. :func:`deform_conv2d_cpu` computes the same function
(zero outside the image, bilinear inside, (dy, dx) offset layout per tap, taps in row-major order;
the tests check forward and gradients against torchvision in float64) from vectorised ops:

1. The input is copied once into a channels-last "table" of rows, one row of C channels per
   pixel, with a zero border of 2 pixels. Every bilinear corner then has a row to point to: a
   corner outside the image points into the border, and a point whose floor lies further out
   is clamped to a corner pair that is entirely border (all its weights multiply zeros), so no
   validity masks are needed.
2. ``F.embedding_bag(mode="sum", per_sample_weights=...)`` gathers the 4 corner rows of every
   (pixel, tap) and blends them with the bilinear weights in one fused, multithreaded kernel.
   Its output rows, taps in order, form the (pixels, K*C) column matrix, already in the layout
   a GEMM wants. The backward needs the transposed gather (the gradient of the input), done
   as a gather too after sorting the corner indices, and one dot product per corner (the
   gradient of the bilinear weights, from which the offsets' gradient is formed directly).
3. The kernel is applied as a 1x1 convolution over that matrix viewed as a channels-last image,
   so oneDNN runs the GEMM (forward and weight gradient; the columns' gradient is a torch.mm
   written over the recomputed columns). Under CPU autocast the GEMMs run in the autocast
   dtype, while the coordinate math and the bilinear weights stay in fp32. The gather is fp32
   when a gradient is needed (its backward accumulates into the table) and in the autocast
   dtype otherwise: at inference that halves its memory traffic (bf16 forward 37.3 -> 31.6 ms
   on the pyramid below, error vs fp64 0.39% of the largest output instead of 0.3%).

The column matrix is 9x the size of the input, so it is processed in chunks of pixel rows and
never materialised whole; the backward recomputes each chunk instead of saving it. Two
measurements on this machine behind that: an allocation above glibc's 32 MiB mmap threshold is
fresh memory every time, and faulting it in cost ~0.4 ms/MiB (a 47 MiB tensor took 19.9 ms to
allocate and fill vs 2.0 ms to refill); and a chunk that stays in the 32 MiB L3 cache between
the gather and the GEMM is cheaper than a round trip to memory.

``python -m benchmarks.deform_conv_cpu`` prints the comparison with a plain 3x3 convolution.
Measured with it (R50-FPN levels of a 320x512 image, batch 2, time / conv2d's): fp32 forward
1.5-1.8x, fp32 forward+backward 1.5-1.7x, bf16-autocast forward 1.7-2.0x; the grid_sample + bmm
implementation this replaced measured 2.3-2.6x, 2.3-2.8x and 4.0x (it ran in fp32 under
autocast).
"""
import weakref
from functools import lru_cache
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

# Zero border of the table. A floor coordinate is clamped to [-2, size]: the corner pairs
# (-2, -1) and (size, size + 1) are both border, so a clamped point samples zeros, as it should.
_PAD = 2

# Column bytes (fp32) per chunk of pixel rows. 24 MiB stays under glibc's mmap threshold and
# within L3, and larger GEMMs are more efficient. Measured while choosing it (R50-FPN pyramid,
# batch 2, fp32 fwd / fwd+bwd, ms): 8 MiB 62 / 250, 16 MiB 60 / 226, 24 MiB 55 / 216.
_CHUNK_BYTES = 24 << 20


@lru_cache(maxsize=128)
def _tap_grid(
    ho: int, wo: int, kh: int, kw: int, padding: int, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """(Ho, Wo, K, 2) (y, x) of every undeformed tap, in the padded table's pixel coordinates."""
    ky = torch.arange(kh, device=device, dtype=dtype).repeat_interleave(kw)
    kx = torch.arange(kw, device=device, dtype=dtype).repeat(kh)
    y = torch.arange(ho, device=device, dtype=dtype).view(ho, 1, 1) + (_PAD - padding) + ky
    x = torch.arange(wo, device=device, dtype=dtype).view(1, wo, 1) + (_PAD - padding) + kx
    return torch.stack(torch.broadcast_tensors(y, x), dim=-1).contiguous()


@lru_cache(maxsize=128)
def _table_consts(
    n: int, h: int, w: int, device: torch.device, dtype: torch.dtype
) -> Tuple[Tensor, Tensor, Tensor]:
    """Largest floor coordinate (2,), row offsets of the 4 corners (4,), first row of each
    image (N, 1, 1, 1), for a table of N images of (H + 4) x (W + 4) rows."""
    hp, wp = h + 2 * _PAD, w + 2 * _PAD
    hi = torch.tensor([h + _PAD, w + _PAD], device=device, dtype=dtype)
    corners = torch.tensor([0, 1, wp, wp + 1], device=device)
    first_row = torch.arange(0, n * hp * wp, hp * wp, device=device, dtype=dtype).view(n, 1, 1, 1)
    return hi, corners, first_row


def _bilinear_taps(
    offset: Tensor, h: int, w: int, kh: int, kw: int, padding: int
) -> Tuple[Tensor, Tensor]:
    """Where every (pixel, tap) samples the table.

    Args:
        offset: (N, 2*K, Ho, Wo), (dy, dx) per tap.
        h, w: input size (the table holds (H + 4) x (W + 4) rows per image).

    Returns:
        idx: (N*Ho*Wo*K, 4) int64 table rows of the corners (y0x0, y0x1, y1x0, y1x1), rows in
        (n, y, x, tap) order; no gradient.
        frac: (N*Ho*Wo*K, 2) fractional part of (y, x); carries the offsets' gradient.
    """
    n, _, ho, wo = offset.shape
    k = kh * kw
    grid = _tap_grid(ho, wo, kh, kw, padding, offset.device, offset.dtype)
    # grid first: the sum takes its contiguous (n, y, x, tap, yx) layout, not the permuted one.
    p = grid + offset.view(n, k, 2, ho, wo).permute(0, 3, 4, 1, 2)  # (N, Ho, Wo, K, 2)
    # The row index is computed in floating point, exact up to 2**24 rows in fp32.
    rows = n * (h + 2 * _PAD) * (w + 2 * _PAD)
    index_dtype = offset.dtype if rows < 2**24 else torch.float64
    hi, corners, first_row = _table_consts(n, h, w, offset.device, index_dtype)
    with torch.no_grad():
        p0 = p.floor()
        # fmax/fmin, not clamp: a NaN offset must give a valid row (and a NaN output), not
        # an out-of-range index
        q = torch.fmin(torch.fmax(p0.to(index_dtype), torch.zeros_like(hi)), hi)
        row = q[..., 0] * (w + 2 * _PAD) + q[..., 1] + first_row
        idx = row.to(torch.int64).unsqueeze(-1) + corners
    frac = p - p0
    return idx.view(-1, 4), frac.view(-1, 2)


def _corner_weights(frac: Tensor) -> Tensor:
    """(B, 2) fractional (y, x) -> (B, 4) bilinear weights of (y0x0, y0x1, y1x0, y1x1)."""
    w = torch.stack([1 - frac, frac], dim=-1)  # (B, yx, corner)
    return (w[:, 0, :, None] * w[:, 1, None, :]).view(-1, 4)


def _frac_grad(frac: Tensor, grad_weights: Tensor) -> Tensor:
    """Gradient of :func:`_corner_weights`: (B, 2) frac, (B, 4) d/dweights -> (B, 2) d/dfrac."""
    g = grad_weights.view(-1, 2, 2)  # (B, y corner, x corner)
    w = torch.stack([1 - frac, frac], dim=-1)  # (B, yx, corner)
    gy = ((g[:, 1, :] - g[:, 0, :]) * w[:, 1]).sum(-1)
    gx = ((g[:, :, 1] - g[:, :, 0]) * w[:, 0]).sum(-1)
    return torch.stack([gy, gx], dim=-1)


def _padded_table(x: Tensor, dtype: torch.dtype) -> Tensor:
    """(N, C, H, W) -> (N*(H+4)*(W+4), C): channels-last rows with a zero border of 2 pixels."""
    n, c, h, w = x.shape
    table = x.new_empty((n, h + 2 * _PAD, w + 2 * _PAD, c), dtype=dtype)
    # zero only the border, the interior is overwritten (8x256x40x64: 7.7 -> 7.1 ms)
    table[:, :_PAD].zero_()
    table[:, _PAD + h :].zero_()
    table[:, _PAD : _PAD + h, :_PAD].zero_()
    table[:, _PAD : _PAD + h, _PAD + w :].zero_()
    table[:, _PAD : _PAD + h, _PAD : _PAD + w] = x.permute(0, 2, 3, 1)
    return table.view(-1, c)


def _as_image(m: Tensor) -> Tensor:
    """(R, F) row-major matrix -> the same memory as a channels-last (1, F, R, 1) image, on
    which a 1x1 convolution is the matrix product: oneDNN's GEMM. (R, 2304) @ (2304, 256) in
    fp32, per 5120 rows: 29-33 ms as a 1x1 conv vs 38 ms with torch.mm (MKL); same in bf16."""
    return m.view(1, m.shape[0], 1, m.shape[1]).permute(0, 3, 1, 2)


def _as_rows(img: Tensor) -> Tensor:
    """Inverse of :func:`_as_image`: channels-last (1, F, R, 1) -> (R, F), a view."""
    return img.permute(0, 2, 3, 1).reshape(img.shape[2], img.shape[1])


def _gather(table: Tensor, idx: Tensor, weights: Tensor) -> Tensor:
    """(B, C) = sum_j weights[:, j] * table[idx[:, j]]; idx, weights (B, 4)."""
    # Detached: on a table that requires grad, embedding_bag takes its training path (it also
    # builds the backward's index maps), measured 2-4x slower than the forward-only kernel.
    return F.embedding_bag(
        idx, table.detach(), per_sample_weights=weights.detach().to(table.dtype), mode="sum"
    )


def _gather_backward(
    grad: Tensor, table: Tensor, idx: Tensor, weights: Tensor, need_table: bool, need_weights: bool
) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """Gradients of :func:`_gather` for grad (B, C): table (T, C) and weights (B, 4).

    The table's gradient is the transposed gather, computed as a gather too: sorting the
    corner indices turns it into one bag per table row, summed by embedding_bag's forward
    kernel. Same result as embedding_bag's own backward (which also sorts), and on a
    2730-pixel chunk 3.7 ms instead of 7.9 ms (int32 keys sort in half the time of int64).
    """
    b = idx.shape[0]
    flat = idx.view(-1)
    g_table = g_weights = None
    if need_table:
        keys, order = torch.sort(flat.to(torch.int32))
        counts = torch.bincount(keys, minlength=table.shape[0])
        starts = torch.cumsum(counts, 0) - counts
        g_table = F.embedding_bag(
            order // 4, grad, starts, per_sample_weights=weights.reshape(-1)[order], mode="sum"
        )
    if need_weights:
        # embedding_bag's own kernel for the per-corner dot products <grad[b], table[idx[b, j]]>
        offsets = torch.arange(0, 4 * b, 4, device=idx.device)
        bag = torch.arange(b, device=idx.device).repeat_interleave(4)
        g_weights = torch.ops.aten._embedding_bag_per_sample_weights_backward(
            grad, table, flat, offsets, bag, 0, -1
        ).view(b, 4)
    return g_table, g_weights


class _GatherProject(torch.autograd.Function):
    """out[r] = weight_rows @ concat_k(sum_j w[r, k, j] * table[idx[r, k, j]]), in row chunks.

    Inputs: table (T, C); frac (R*K, 2); weight_rows (Cout, K*C), taps in row-major order;
    idx (R*K, 4) int64 (no gradient); K; the GEMM dtype; pixel rows per chunk.
    Output: (R, Cout) in the GEMM dtype.

    The backward is written out (:func:`_gather_backward`) rather than left to autograd over a
    recomputed ``embedding_bag``: that would run embedding_bag's slower training forward, and
    this way the gradient of the columns can overwrite the recomputed columns instead of
    taking new memory.
    """

    @staticmethod
    def forward(ctx, table, frac, weight_rows, idx, k, gemm_dtype, chunk_rows):
        r = idx.shape[0] // k
        c = table.shape[1]
        weights = _corner_weights(frac)
        kernel = weight_rows.to(gemm_dtype).view(*weight_rows.shape, 1, 1)
        out = table.new_empty((0, kernel.shape[0]), dtype=gemm_dtype) if r == 0 else None
        for s in range(0, r, chunk_rows):
            e = min(r, s + chunk_rows)
            cols = _gather(table, idx[s * k : e * k], weights[s * k : e * k])
            cols = cols.view(e - s, k * c).to(gemm_dtype)
            y = _as_rows(F.conv2d(_as_image(cols), kernel))
            if e - s == r:
                out = y
                break
            if out is None:
                out = y.new_empty((r, y.shape[1]))
            out[s:e] = y
        ctx.save_for_backward(table, frac, weights, kernel, idx)
        ctx.k, ctx.chunk_rows, ctx.weight_dtype = k, chunk_rows, weight_rows.dtype
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        table, frac, weights, kernel, idx = ctx.saved_tensors
        k, chunk_rows = ctx.k, ctx.chunk_rows
        need_table, need_frac, need_weight = ctx.needs_input_grad[:3]
        need_cols = need_table or need_frac
        gemm_dtype = kernel.dtype
        grad_out = grad_out.to(gemm_dtype).contiguous()
        r, c = grad_out.shape[0], table.shape[1]
        g_table = torch.zeros_like(table) if need_table else None
        g_weights = torch.empty_like(weights) if need_frac else None
        # accumulate over chunks in fp32 even when the GEMM runs in bf16
        acc = torch.float64 if gemm_dtype == torch.float64 else torch.float32
        g_kernel = kernel.new_zeros(kernel.shape, dtype=acc) if need_weight else None
        kernel_rows = kernel.view(kernel.shape[:2])
        for s in range(0, r, chunk_rows):
            e = min(r, s + chunk_rows)
            idx_c, w_c, g_c = idx[s * k : e * k], weights[s * k : e * k], grad_out[s:e]
            cols = _gather(table, idx_c, w_c).view(e - s, k * c)
            cols_g = cols.to(gemm_dtype)
            if need_weight:
                g_kernel += torch.ops.aten.convolution_backward(
                    _as_image(g_c), _as_image(cols_g), kernel, None, (1, 1), (0, 0), (1, 1),
                    False, (0, 0), 1, (False, True, False),
                )[1]  # fmt: skip
            if need_cols:
                # The gradient of the columns overwrites them (no new chunk of memory), so
                # torch.mm, which takes an out= buffer; oneDNN's backward (which allocates)
                # measured the same within noise (fp32 fwd+bwd 197 vs 199 ms per pyramid).
                g_cols = torch.mm(g_c, kernel_rows, out=cols_g)
                if g_cols.dtype != cols.dtype:
                    g_cols = cols.copy_(g_cols)
                # Only the rows this chunk reads: the transposed gather returns one row per
                # row of the table it is given.
                lo, hi = (int(v) for v in torch.aminmax(idx_c))
                gt, gw = _gather_backward(
                    g_cols.view(-1, c), table[lo : hi + 1], idx_c - lo, w_c, need_table, need_frac
                )
                if need_table:
                    g_table[lo : hi + 1] += gt
                if need_frac:
                    g_weights[s * k : e * k] = gw
        g_frac = _frac_grad(frac, g_weights) if need_frac else None
        g_rows = g_kernel.view(kernel.shape[:2]).to(ctx.weight_dtype) if need_weight else None
        return g_table, g_frac, g_rows, None, None, None, None


# Kernel matrices of weights that need no gradient (inference), by id(weight):
# (weakref to the weight, its version, dtype, matrix). Re-laying out and casting the 2.4 MB
# kernel at each of the 5 FPN levels cost ~2 ms per pyramid in bf16 at batch 1.
_KERNEL_CACHE: Dict[int, Tuple[weakref.ref, int, torch.dtype, Tensor]] = {}


def _kernel_rows(weight: Tensor, dtype: torch.dtype) -> Tensor:
    """(Cout, Cin, kh, kw) -> (Cout, kh*kw*Cin) in ``dtype``, taps in row-major order."""
    c_out = weight.shape[0]
    if torch.is_grad_enabled() and weight.requires_grad:
        return weight.permute(0, 2, 3, 1).reshape(c_out, -1)
    hit = _KERNEL_CACHE.get(id(weight))
    if hit is not None and hit[0]() is weight and hit[1] == weight._version and hit[2] == dtype:
        return hit[3]
    rows = weight.detach().permute(0, 2, 3, 1).to(dtype).reshape(c_out, -1)
    if len(_KERNEL_CACHE) > 16:
        _KERNEL_CACHE.clear()
    _KERNEL_CACHE[id(weight)] = (weakref.ref(weight), weight._version, dtype, rows)
    return rows


def deform_conv2d_cpu(
    x: Tensor, offset: Tensor, weight: Tensor, bias: Optional[Tensor] = None, *, padding: int = 1
) -> Tensor:
    """Stride-1 deformable conv (DCNv1) with one offset group; same function as
    ``torchvision.ops.deform_conv2d(x, offset, weight, bias, padding=padding)``.

    Under CPU autocast the GEMM runs in the autocast dtype and so does the result (what a plain
    conv returns there); the sampling coordinates and bilinear weights are fp32, and so are the
    gathered values when autograd needs them (else they are in the autocast dtype).
    Otherwise everything runs in x's dtype (fp32 or fp64).

    Args:
        x: (N, Cin, H, W) input.
        offset: (N, 2*kh*kw, Ho, Wo) offsets, (dy, dx) per kernel tap, taps in row-major order.
        weight: (Cout, Cin, kh, kw); bias: (Cout,) or None.
        padding: zero padding on each side.

    Returns:
        (N, Cout, Ho, Wo).
    """
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    k = kh * kw
    device_type = x.device.type
    compute = x.dtype if x.dtype == torch.float64 else torch.float32
    autocast = torch.is_autocast_enabled(device_type)
    gemm_dtype = torch.get_autocast_dtype(device_type) if autocast else compute
    with torch.autocast(device_type, enabled=False):
        idx, frac = _bilinear_taps(offset.to(compute), h, w, kh, kw, padding)
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or offset.requires_grad or weight.requires_grad
        )
        table = _padded_table(x, gemm_dtype if autocast and not needs_grad else compute)
        rows = _kernel_rows(weight, gemm_dtype if autocast else weight.dtype)
        chunk_rows = max(1, _CHUNK_BYTES // (k * c * 4))
        out = _GatherProject.apply(table, frac, rows, idx, k, gemm_dtype, chunk_rows)
        out = out.view(n, ho, wo, c_out).permute(0, 3, 1, 2)
        if bias is not None:
            out = out + bias.to(out.dtype).view(1, -1, 1, 1)
    return out.contiguous()
