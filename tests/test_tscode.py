"""TSCODE (task-specific context decoupling) as a head plug-in: the encoders' structure, shapes
on odd grids, the 2x2 rearrangement, res2's path into level 3, and hosts left as they were."""
import pytest
import torch
from torch import nn

import ddod  # noqa: F401
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import FPN, BasicStem, ResNet
from detectron2.utils.events import EventStorage

from ddod.modeling import (
    DDODHead,
    FPNWithBottomUp,
    GFLHead,
    LastLevelP6P7FromP5,
    TaskContextDecoupler,
    VFNetHead,
    make_resnet_stages,
)
from ddod.modeling.tscode import shuffle_to_grid

from .common import make_input, tiny_ddod

C = 32  # FPN width of the toy levels (GN needs 32)
# the levels of a 200 x 296 input: P3 25x37, P4 13x19, P5 7x10, P6 4x5, P7 2x3 (odd sizes)
SIZES = [(25, 37), (13, 19), (7, 10), (4, 5), (2, 3)]


def _levels(channels=C, sizes=SIZES, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(2, channels, h, w, generator=g) for h, w in sizes]
    below = torch.randn(2, channels, 2 * sizes[0][0], 2 * sizes[0][1], generator=g)
    if requires_grad:
        below.requires_grad_(True)
        for f in feats:
            f.requires_grad_(True)
    return feats, below


def _ddod_head(tscode=None, levels=5, **kw):
    return DDODHead(
        input_shape=[ShapeSpec(channels=C)] * levels, num_classes=3, conv_dims=C, num_convs=2,
        tscode=tscode, **kw,
    )  # fmt: skip


def test_pixel_shuffle_puts_each_channel_at_its_fine_position():
    # class-major channels: channel c*4 + 2i + j of coarse (y, x) -> class c at (2y+i, 2x+j)
    coarse = torch.zeros(1, 2 * 4, 2, 3)
    for c in range(2):
        for i in range(2):
            for j in range(2):
                for y in range(2):
                    for x in range(3):
                        coarse[0, c * 4 + 2 * i + j, y, x] = 1000 * c + 100 * i + 10 * j + y * 3 + x
    fine = shuffle_to_grid(coarse, (3, 5))  # odd: the last row and column of 4 x 6 are cropped
    assert fine.shape == (1, 2, 3, 5)
    assert fine[0, 1, 2, 3].item() == 1000 + 0 + 10 + 1 * 3 + 1  # (2y+i, 2x+j) = (2, 3)
    assert fine[0, 0, 1, 4].item() == 100 + 0 + 0 + 0 * 3 + 2  # (1, 4): y=0, i=1, x=2, j=0
    with pytest.raises(ValueError, match="too small"):
        shuffle_to_grid(coarse, (5, 5))


def test_encoder_shapes_at_every_level_including_odd_sizes():
    feats, below = _levels()
    cls_in, reg_in = TaskContextDecoupler(C)(feats, below)
    for level, (h, w) in enumerate(SIZES):
        assert cls_in[level].shape == (2, 2 * C, (h + 1) // 2, (w + 1) // 2)
        assert reg_in[level].shape == (2, C, h, w)


@pytest.mark.parametrize("head_cls", ["ddod", "gfl"])
def test_host_outputs_keep_their_shapes(head_cls):
    feats, below = _levels()
    torch.manual_seed(0)
    make = {
        "ddod": lambda t: _ddod_head(t),
        "gfl": lambda t: GFLHead(input_shape=[ShapeSpec(channels=C)] * 5, num_classes=3,
                                 reg_max=4, conv_dims=C, num_convs=2, tscode=t),
    }[head_cls]  # fmt: skip
    plain = make(None)(feats)
    for sce, dpe in [(True, False), (False, True), (True, True)]:
        out = make(TaskContextDecoupler(C, sce=sce, dpe=dpe, sce_conv_dims=2 * C))(feats, below)
        assert len(out) == len(plain)
        for a, b in zip(out, plain):
            assert [t.shape for t in a] == [t.shape for t in b]


def test_dpe_reaches_res2_at_level_3_only():
    feats, below = _levels(requires_grad=True)
    head = _ddod_head(TaskContextDecoupler(C, sce=True, dpe=True, sce_conv_dims=2 * C))
    cls_logits, deltas, quality = head(feats, below)
    deltas[0].sum().backward(retain_graph=True)
    assert below.grad is not None and below.grad.abs().sum() > 0
    below.grad = None
    quality[0].sum().backward(retain_graph=True)  # the quality branch is on the DPE side
    assert below.grad.abs().sum() > 0
    below.grad = None
    (deltas[1].sum() + cls_logits[0].sum()).backward()
    # level 4's boxes read P3 (its P_{l-1}), not res2; classification never reads res2
    assert below.grad is None or below.grad.abs().sum() == 0
    assert feats[0].grad.abs().sum() > 0


def test_missing_res2_is_a_clear_error():
    feats, _ = _levels()
    with pytest.raises(ValueError, match="res2"):
        TaskContextDecoupler(C)(feats, None)
    # without P_{l-1} DPE needs no res2
    TaskContextDecoupler(C, dpe_inputs=("same", "next"))(feats, None)


def test_encoders_are_shared_across_levels():
    n3 = sum(p.numel() for p in _ddod_head(TaskContextDecoupler(C), levels=3).parameters())
    n5 = sum(p.numel() for p in _ddod_head(TaskContextDecoupler(C), levels=5).parameters())
    assert n5 - n3 == 2  # two more per-level Scale scalars, nothing else
    t = TaskContextDecoupler(C)
    # D_cls, D_loc and the P8 conv: three 3x3 C -> C convs with bias
    assert sum(p.numel() for p in t.parameters()) == 3 * (9 * C * C + C)
    assert sum(p.numel() for p in TaskContextDecoupler(C, top="maxpool").parameters()) == 2 * (
        9 * C * C + C
    )


def test_sce_tower_is_shallow_and_wide_with_a_4x_predictor():
    head = _ddod_head(TaskContextDecoupler(C, sce_conv_dims=2 * C, sce_num_convs=2))
    convs = [b.conv for b in head.cls_tower]
    assert len(convs) == 2 and convs[0].in_channels == 2 * C and convs[0].out_channels == 2 * C
    assert head.cls_score.in_channels == 2 * C and head.cls_score.out_channels == 4 * 3
    assert head.cls_score.kernel_size == (3, 3)
    # every channel starts from the focal-loss prior
    assert torch.allclose(head.cls_score.bias, torch.full((12,), head.cls_score.bias[0].item()))
    # the regression tower and the quality branch keep the host's widths
    assert head.reg_tower[0].conv.in_channels == C and head.quality.in_channels == C


def test_dpe_sum_is_eq5_by_hand():
    feats, below = _levels()
    t = TaskContextDecoupler(C, sce=False, dpe=True)
    up = lambda x, like: nn.functional.interpolate(x, size=like.shape[-2:], mode="nearest")  # noqa
    _, reg_in = t(feats, below)
    expected = feats[1] + up(feats[2], feats[1]) + t.dpe.down(up(feats[1], feats[0]) + feats[0])
    assert torch.allclose(reg_in[1], expected, atol=1e-6)
    # level 7 uses P8 = conv(ReLU(P7))
    p8 = t.top.conv(feats[4].relu())
    assert torch.allclose(reg_in[4][:, :, :2, :3], (feats[4] + up(p8, feats[4])
                          + t.dpe.down(up(feats[4], feats[3]) + feats[3])), atol=1e-6)  # fmt: skip


def test_top_level_choices():
    feats, below = _levels()
    for top in ("conv", "maxpool", "drop"):
        cls_in, reg_in = TaskContextDecoupler(C, top=top)(feats, below)
        assert cls_in[4].shape == (2, 2 * C, 1, 2) and reg_in[4].shape == (2, C, 2, 3)
    cls_in, _ = TaskContextDecoupler(C, top="drop")(feats, below)
    assert cls_in[4][:, C:].abs().sum() == 0  # the missing P8 half is zeros


def test_checkpoint_keys_without_tscode_are_unchanged():
    keys = set(_ddod_head().state_dict())
    assert not any("tscode" in k for k in keys)
    assert any(k.startswith("tscode.") for k in _ddod_head(TaskContextDecoupler(C)).state_dict())


def _bottom_up(res2_out=True):
    return ResNet(
        BasicStem(3, 8, norm="BN"), make_resnet_stages(18, base_channels=8, norm="BN"),
        out_features=(["res2"] if res2_out else []) + ["res3", "res4", "res5"],
    )  # fmt: skip


def test_fpn_with_bottom_up_hands_res2_raw_or_projected():
    torch.manual_seed(0)
    kw = dict(in_features=["res3", "res4", "res5"], top_block=LastLevelP6P7FromP5(8, 8))
    neck = FPNWithBottomUp(bottom_up=_bottom_up(), out_channels=8, **kw).eval()
    x = torch.rand(1, 3, 64, 96)
    out = neck(x)
    assert torch.equal(out["res2"], neck.bottom_up(x)["res2"])  # 8 wide: raw, no lateral conv
    assert neck.output_shape()["res2"] == ShapeSpec(channels=8, stride=4)
    assert not len(neck.extra_projections)
    wide = FPNWithBottomUp(bottom_up=_bottom_up(), out_channels=16,
                           **dict(kw, top_block=LastLevelP6P7FromP5(16, 16)))  # fmt: skip
    assert wide(x)["res2"].shape == (1, 16, 16, 24) and "res2" in wide.extra_projections
    plain = FPN(bottom_up=_bottom_up(False), out_channels=8, **kw)
    same = FPNWithBottomUp(bottom_up=_bottom_up(False), out_channels=8, extra_features=[], **kw)
    assert set(plain.state_dict()) == set(same.state_dict())
    with pytest.raises(ValueError, match="res2"):
        FPNWithBottomUp(bottom_up=_bottom_up(False), out_channels=8, **kw)


def _tiny_tscode_ddod(**tscode_kw):
    model = tiny_ddod(head={"conv_dims": 32})
    model.backbone = FPNWithBottomUp(
        bottom_up=_bottom_up(), in_features=["res3", "res4", "res5"], out_channels=32,
        top_block=LastLevelP6P7FromP5(32, 32),
    )  # fmt: skip
    model.head = DDODHead(
        input_shape=[ShapeSpec(channels=32)] * 5, num_classes=4, conv_dims=32, num_convs=2,
        tscode=TaskContextDecoupler(32, sce_conv_dims=64, **tscode_kw),
    )  # fmt: skip
    model.head_extra_features = {"below": "res2"}
    return model


def test_empty_image_losses_are_the_hosts():
    torch.manual_seed(0)
    model = _tiny_tscode_ddod()
    model.train()
    with EventStorage():
        losses = model([make_input(200, 296, [], [])])
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_iou"}
    assert losses["loss_cls"].item() > 0
    assert losses["loss_bbox"].item() == 0 and losses["loss_iou"].item() == 0
    sum(losses.values()).backward()
    with EventStorage():
        losses = model([make_input(200, 296, [[20, 30, 120, 150]], [1])])
    assert all(v.item() > 0 for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 200, 296) * 255}])
    assert out[0]["instances"].image_size == (200, 296)


def test_vfnet_takes_dpe_only():
    shapes = [ShapeSpec(channels=C)] * 5
    kw = dict(input_shape=shapes, num_classes=3, strides=[8, 16, 32, 64, 128], conv_dims=C)
    with pytest.raises(ValueError, match="DPE only"):
        VFNetHead(**kw, tscode=TaskContextDecoupler(C))
    feats, below = _levels()
    head = VFNetHead(**kw, tscode=TaskContextDecoupler(C, sce=False, dpe=True))
    out = head(feats, below)
    assert [t.shape[-2:] for t in out[1]] == [torch.Size(s) for s in SIZES]


def test_unknown_options_are_rejected():
    with pytest.raises(ValueError, match="top"):
        TaskContextDecoupler(C, top="p8")
    with pytest.raises(ValueError, match="sce_downsample"):
        TaskContextDecoupler(C, sce_downsample="conv9")
    with pytest.raises(ValueError, match="dpe_inputs"):
        TaskContextDecoupler(C, dpe_inputs=("prev", "P_l"))
