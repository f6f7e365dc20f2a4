import math

import pytest
import torch

import ddod  # noqa: F401
from detectron2.layers import ShapeSpec

from ddod.modeling import DDODHead
from ddod.modeling.layers import ConvNormAct, DeformConvNormAct, build_conv_tower
from ddod.modeling.layers.deform_conv import deform_conv2d_grid_sample


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


def test_zero_offsets_equal_plain_conv():
    block = DeformConvNormAct(8, 8, norm="")
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    conv.weight.data.copy_(block.conv.weight.data)
    conv.bias.data.copy_(block.conv.bias.data)
    x = torch.randn(2, 8, 9, 11)
    assert torch.allclose(block(x), torch.relu(conv(x)), atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 6, 7, 9), (1, 3, 1, 1), (2, 4, 5, 2)])
def test_grid_sample_deform_conv_matches_torchvision(shape):
    from torchvision.ops import deform_conv2d

    torch.manual_seed(0)
    n, c, h, w = shape
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    offset = (torch.randn(n, 18, h, w, dtype=torch.float64) * 2).requires_grad_()
    weight = torch.randn(5, c, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    ref = deform_conv2d(x, offset, weight, bias, padding=1)
    ours = deform_conv2d_grid_sample(x, offset, weight, bias, padding=1)
    assert torch.allclose(ref, ours, atol=1e-10)
    g_ref = torch.autograd.grad((ref**2).sum(), [x, offset, weight, bias])
    g_ours = torch.autograd.grad((ours**2).sum(), [x, offset, weight, bias])
    for a, b in zip(g_ref, g_ours):
        assert torch.allclose(a, b, atol=1e-9)
