import math

import pytest
import torch

import ddod  # noqa: F401
from detectron2.layers import ShapeSpec

from ddod.modeling import DDODHead
from ddod.modeling.layers import ConvNormAct, DeformConvNormAct, build_conv_tower
from ddod.modeling.layers import deform_conv
from ddod.modeling.layers.deform_conv import deform_conv2d_cpu


def features(sizes=((16, 20), (8, 10), (4, 5)), channels=32, n=2):
    return [torch.randn(n, channels, h, w) for h, w in sizes]


@pytest.mark.parametrize("deform", [0, None])
def test_output_shapes(deform):
    head = DDODHead(
        input_shape=[ShapeSpec(channels=32)] * 3, num_classes=7, conv_dims=32, num_convs=2,
        cls_deform_index=deform, reg_deform_index=deform,
    )  # fmt: skip
    cls, reg, iou = head(features())
    for (h, w), c, r, q in zip(((16, 20), (8, 10), (4, 5)), cls, reg, iou):
        assert c.shape == (2, 7, h, w)
        assert r.shape == (2, 4, h, w) and r.dtype == torch.float32
        assert q.shape == (2, 1, h, w)


def test_reference_initialisation():
    head = DDODHead(input_shape=[ShapeSpec(channels=32)] * 5, num_classes=4, conv_dims=32)
    assert torch.allclose(head.cls_score.bias, torch.full((4,), -math.log(99.0)))
    assert head.cls_score.bias[0].item() == pytest.approx(-4.595, abs=1e-3)
    assert torch.count_nonzero(head.bbox_pred.bias) == 0
    assert torch.count_nonzero(head.quality.bias) == 0
    assert [s.scale.item() for s in head.scales] == [1.0] * 5
    for tower in (head.cls_tower, head.reg_tower):
        first = tower[0]
        assert isinstance(first, DeformConvNormAct)
        assert torch.count_nonzero(first.conv_offset.weight) == 0
        assert torch.count_nonzero(first.conv_offset.bias) == 0
        assert first.conv.bias is None  # GN follows
        assert first.conv.weight.std().item() == pytest.approx(0.01, rel=0.2)


@pytest.mark.parametrize("position", [0, 1, 2, 3, None])
def test_deformable_conv_sits_only_at_the_chosen_position(position):
    tower = build_conv_tower(32, 32, 4, deform_index=position)
    kinds = [isinstance(b, DeformConvNormAct) for b in tower]
    assert kinds == [i == position for i in range(4)]
    assert all(isinstance(b, (ConvNormAct, DeformConvNormAct)) for b in tower)


def test_deform_index_outside_tower_is_rejected():
    with pytest.raises(ValueError, match="deform_index=4"):
        build_conv_tower(32, 32, 4, deform_index=4)
    # "None" from a command-line override (Hydra spells None as null) is named as such
    with pytest.raises(TypeError, match="reg_deform_index=null"):
        build_conv_tower(32, 32, 4, deform_index="None")


def test_zero_offsets_equal_plain_conv():
    block = DeformConvNormAct(8, 8, norm="")
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    conv.weight.data.copy_(block.conv.weight.data)
    conv.bias.data.copy_(block.conv.bias.data)
    x = torch.randn(2, 8, 9, 11)
    assert torch.allclose(block(x), torch.relu(conv(x)), atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 6, 7, 9), (1, 3, 1, 1), (2, 4, 5, 2)])
def test_cpu_deform_conv_matches_torchvision(shape):
    from torchvision.ops import deform_conv2d

    torch.manual_seed(0)
    n, c, h, w = shape
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    offset = (torch.randn(n, 18, h, w, dtype=torch.float64) * 2).requires_grad_()
    weight = torch.randn(5, c, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    ref = deform_conv2d(x, offset, weight, bias, padding=1)
    ours = deform_conv2d_cpu(x, offset, weight, bias, padding=1)
    assert torch.allclose(ref, ours, atol=1e-10)
    g_ref = torch.autograd.grad((ref**2).sum(), [x, offset, weight, bias])
    g_ours = torch.autograd.grad((ours**2).sum(), [x, offset, weight, bias])
    for a, b in zip(g_ref, g_ours):
        assert torch.allclose(a, b, atol=1e-9)


def _deform_inputs(n=2, c=4, h=5, w=6, c_out=3, scale=3.0, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    offset = torch.randn(n, 18, h, w, generator=g, dtype=dtype) * scale
    weight = torch.randn(c_out, c, 3, 3, generator=g, dtype=dtype)
    bias = torch.randn(c_out, generator=g, dtype=dtype)
    return x, offset, weight, bias


@pytest.mark.parametrize("scale", [0.5, 10.0])  # 10: many taps fully outside the image
def test_cpu_deform_conv_gradcheck_across_chunks(monkeypatch, scale):
    # 7 pixels per chunk: the 60 pixels run through 9 chunks, the last one partial
    monkeypatch.setattr(deform_conv, "_CHUNK_BYTES", 7 * 9 * 4 * 4)
    inputs = [t.requires_grad_() for t in _deform_inputs(scale=scale)]
    assert torch.autograd.gradcheck(lambda *a: deform_conv2d_cpu(*a, padding=1), inputs)


@pytest.mark.parametrize("needs", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1)])
def test_cpu_deform_conv_gradients_of_a_subset_of_inputs(needs):
    """The backward skips the gradients nobody asked for; the others must not change."""
    from torchvision.ops import deform_conv2d

    x, offset, weight, _ = _deform_inputs()
    ts = [t.clone().requires_grad_(bool(need)) for t, need in zip((x, offset, weight), needs)]
    wanted = [t for t in ts if t.requires_grad]
    ours = torch.autograd.grad(deform_conv2d_cpu(*ts).pow(2).sum(), wanted)
    ref = torch.autograd.grad(deform_conv2d(*ts, padding=1).pow(2).sum(), wanted)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-9)


def test_cpu_deform_conv_under_bf16_autocast():
    """GEMM in bf16, result in bf16 (as a plain conv's), close to the fp32 function; gradients
    arrive in the inputs' dtype and stay close too."""
    from torchvision.ops import deform_conv2d

    x, offset, weight, _ = _deform_inputs(n=2, c=32, h=12, w=14, c_out=32, scale=2.0)
    x, offset, weight = (t.float().requires_grad_() for t in (x, offset, weight))
    weight.data *= 0.1
    grad_out = torch.randn(2, 32, 12, 14, generator=torch.Generator().manual_seed(1))
    ref = deform_conv2d(x.double(), offset.double(), weight.double(), padding=1)
    g_ref = torch.autograd.grad((ref * grad_out).sum(), [x, offset, weight])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = deform_conv2d_cpu(x, offset, weight)
    assert out.dtype == torch.bfloat16
    # measured 0.3% of the largest output; bf16 keeps 8 bits of mantissa (0.4%)
    assert (out.double() - ref).abs().max() <= 1e-2 * ref.abs().max()
    grads = torch.autograd.grad((out.float() * grad_out).sum(), [x, offset, weight])
    for g, r, t in zip(grads, g_ref, (x, offset, weight)):
        assert g.dtype == t.dtype
        assert (g.double() - r).abs().max() <= 1e-2 * r.abs().max()  # measured <= 0.35%


def test_cpu_deform_conv_inference_under_bf16_autocast_stays_close():
    """Without autograd the sampled table is bf16 too (half the memory traffic of the gather);
    the result must stay as close to the fp64 function as the training path's."""
    from torchvision.ops import deform_conv2d

    x, offset, weight, _ = _deform_inputs(n=2, c=32, h=12, w=14, c_out=32, scale=2.0)
    weight = weight * 0.1
    ref = deform_conv2d(x, offset, weight, padding=1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = deform_conv2d_cpu(x.float(), offset.float(), weight.float())
    assert out.dtype == torch.bfloat16
    err = (out.double() - ref).abs().max() / ref.abs().max()
    assert err <= 1e-2, err  # measured 0.39%: bf16 keeps 8 bits of mantissa


def test_deform_block_under_bf16_autocast_gives_the_dtype_of_a_plain_block():
    x = torch.randn(1, 32, 6, 7)
    deform, plain = DeformConvNormAct(32, 32), ConvNormAct(32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert deform(x).dtype == plain(x).dtype == torch.bfloat16


def test_cpu_deform_conv_sees_in_place_weight_updates_without_grad():
    """Without autograd the kernel's matrix layout is cached per weight; an in-place update
    (an optimizer step, load_state_dict) must not be served from the stale cache."""
    x, offset, weight, _ = _deform_inputs(dtype=torch.float32)
    with torch.no_grad():
        first = deform_conv2d_cpu(x, offset, weight)
        weight.mul_(2)
        second = deform_conv2d_cpu(x, offset, weight)
    assert torch.allclose(second, 2 * first, rtol=1e-5, atol=1e-5)


def test_cpu_deform_conv_nan_offset_gives_nan_not_an_index_error():
    x, offset, weight, _ = _deform_inputs(dtype=torch.float32)
    offset[0, :, 2, 3] = float("nan")
    out = deform_conv2d_cpu(x, offset, weight)
    assert out[0, :, 2, 3].isnan().all()
    assert out[1].isfinite().all()
