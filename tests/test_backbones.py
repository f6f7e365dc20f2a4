"""Stronger backbones (ddod/modeling/deform_resnet.py, make_resnet_stages), their configs
(configs/common/models/backbones.py, configs/paper_backbones/**) and the multi-scale 2x recipes."""
import glob
import os
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ddod  # noqa: F401  (compat + registrations)
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, instantiate
from detectron2.modeling import build_model
from detectron2.modeling.backbone import BasicStem, ResNet
from detectron2.modeling.backbone import resnet as d2_resnet
from detectron2.utils.events import EventStorage

from ddod.modeling import DeformBottleneckBlock, make_resnet_stages
from ddod.modeling.deform_resnet import DeformConv

from .common import make_input, small_yacs_cfg, tiny_ddod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKBONE_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "paper_backbones", "*", "*.py")))


def _reference_deform_conv(x, offset_mask, weight, *, stride, padding, groups, deform_groups):
    """Modulated deformable conv as detectron2's ``DeformBottleneckBlock`` defines it, written
    from scratch with ``grid_sample``: ``offset_mask`` (N, 27 * G, Ho, Wo) is split in three
    chunks, the first two concatenated are the offsets, (dy, dx) for each tap of each offset
    group, the third the mask logits (tap k of group g at channel 9g + k)."""
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    ho, wo = offset_mask.shape[-2:]
    chunk_x, chunk_y, mask = torch.chunk(offset_mask, 3, dim=1)
    offset = torch.cat((chunk_x, chunk_y), dim=1).view(n, deform_groups, kh * kw, 2, ho, wo)
    mask = mask.sigmoid().view(n, deform_groups, kh * kw, ho, wo)
    base_y = (torch.arange(ho, dtype=x.dtype) * stride - padding).view(ho, 1)
    base_x = (torch.arange(wo, dtype=x.dtype) * stride - padding).view(1, wo)
    cols = []  # per tap: (N, C, Ho, Wo) sampled and modulated input
    for k in range(kh * kw):
        i, j = divmod(k, kw)
        per_group = []
        for g, xg in enumerate(torch.chunk(x, deform_groups, dim=1)):
            y = base_y + i + offset[:, g, k, 0]
            xx = base_x + j + offset[:, g, k, 1]
            # grid_sample's align_corners=True: -1 and 1 are the centres of the edge pixels;
            # corners outside the image read zeros, as the DCN kernels do
            grid = torch.stack((2 * xx / (w - 1) - 1, 2 * y / (h - 1) - 1), dim=-1)
            sampled = F.grid_sample(xg, grid, mode="bilinear", align_corners=True)
            per_group.append(sampled * mask[:, g, k].unsqueeze(1))
        cols.append(torch.cat(per_group, dim=1))
    out = 0
    for k in range(kh * kw):
        i, j = divmod(k, kw)
        out = out + F.conv2d(cols[k], weight[:, :, i : i + 1, j : j + 1], groups=groups)
    return out


def test_zero_offsets_and_mask_one_give_the_plain_conv():
    torch.manual_seed(0)
    conv = DeformConv(8, 12, 3, stride=2, padding=1, groups=4, deformable_groups=2)
    x = torch.randn(2, 8, 11, 14)
    ho, wo = 6, 7
    offset = torch.zeros(2, 2 * 2 * 9, ho, wo)
    out = conv(x, offset, torch.ones(2, 2 * 9, ho, wo))
    expected = F.conv2d(x, conv.weight, stride=2, padding=1, groups=4)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv(x, offset), expected, rtol=1e-5, atol=1e-5)  # DCNv1


@pytest.mark.parametrize("modulated", [False, True])
def test_block_with_zero_offsets_and_mask_one_is_the_plain_bottleneck(modulated):
    torch.manual_seed(0)
    kwargs = dict(bottleneck_channels=16, stride=2, num_groups=4, norm="BN", stride_in_1x1=False)
    deform = DeformBottleneckBlock(16, 32, deform_modulated=modulated, **kwargs).eval()
    plain = d2_resnet.BottleneckBlock(16, 32, **kwargs).eval()
    for module in deform.modules():  # non-trivial norms
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    state = deform.state_dict()
    if modulated:
        # zero offsets; a mask logit of 40 is sigmoid = 1 in fp32 (at init it is 0, mask 0.5)
        state["conv2_offset.bias"][18:] = 40.0
    deform.load_state_dict(state)
    missing, unexpected = plain.load_state_dict(state, strict=False)
    assert not missing and unexpected == ["conv2_offset.weight", "conv2_offset.bias"]
    x = torch.randn(2, 16, 13, 10)
    torch.testing.assert_close(deform(x), plain(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride,groups,deform_groups", [(1, 1, 1), (2, 2, 2)])
def test_block_matches_detectron2s_definition_on_random_offsets(stride, groups, deform_groups):
    torch.manual_seed(1)
    block = DeformBottleneckBlock(
        8,
        16,
        bottleneck_channels=8,
        stride=stride,
        num_groups=groups,
        norm="",
        deform_modulated=True,
        deform_num_groups=deform_groups,
    ).double()
    x = torch.randn(2, 8, 9, 12, dtype=torch.float64)
    # offsets of a few pixels, taps landing outside the image included
    ho, wo = (9 - 1) // stride + 1, (12 - 1) // stride + 1
    offset_mask = torch.randn(2, 27 * deform_groups, ho, wo, dtype=x.dtype)
    offset_mask[:, : 18 * deform_groups] *= 3
    ours = block.conv2(x, *ddod.modeling.deform_resnet.split_offset_mask(offset_mask, True))
    ref = _reference_deform_conv(
        x,
        offset_mask,
        block.conv2.weight,
        stride=stride,
        padding=1,
        groups=groups,
        deform_groups=deform_groups,
    )
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)


def test_block_trains_its_offsets_through_the_whole_block():
    torch.manual_seed(0)
    block = DeformBottleneckBlock(
        8, 16, bottleneck_channels=8, norm="BN", deform_modulated=True, stride=2
    )
    block(torch.randn(2, 8, 10, 10)).square().mean().backward()
    # at init the offsets are 0 but their gradient is not (the mask's either)
    assert block.conv2_offset.weight.grad.abs().sum() > 0
    assert block.conv1.weight.grad.abs().sum() > 0


def _tiny_deform_resnet(block_module):
    """R-50-shaped ResNeXt at 1/4 width with DCNv2 in res3-res5, blocks from ``block_module``
    (detectron2's own resnet module or ours)."""
    stages = []
    in_channels, out_channels, bottleneck = 16, 64, 32
    for i, n in enumerate([3, 4, 6, 3]):
        deform = i > 0
        stages.append(
            ResNet.make_stage(
                block_class=block_module.DeformBottleneckBlock
                if deform
                else d2_resnet.BottleneckBlock,
                num_blocks=n,
                stride_per_block=[1 if i == 0 else 2] + [1] * (n - 1),
                in_channels=in_channels,
                out_channels=out_channels,
                bottleneck_channels=bottleneck,
                num_groups=4,
                norm="FrozenBN",
                stride_in_1x1=True,
                **(dict(deform_modulated=True, deform_num_groups=1) if deform else {}),
            )
        )
        in_channels, out_channels, bottleneck = out_channels, out_channels * 2, bottleneck * 2
    return ResNet(BasicStem(3, 16, norm="FrozenBN"), stages, out_features=["res3", "res4", "res5"])


def test_make_resnet_stages_builds_detectron2s_deformable_resnet():
    """Same modules, names and shapes as detectron2's own deformable ResNeXt (whose blocks can
    be constructed here, not run)."""
    theirs = _tiny_deform_resnet(d2_resnet)
    ours = ResNet(
        BasicStem(3, 16, norm="FrozenBN"),
        make_resnet_stages(
            50,
            base_channels=16,
            norm="FrozenBN",
            num_groups=4,
            width_per_group=32,
            deform_on_per_stage=[False, True, True, True],
            deform_modulated=True,
            stride_in_1x1=True,
        ),
        out_features=["res3", "res4", "res5"],
    )
    shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == shapes
    assert shapes["res3.0.conv2_offset.weight"] == (27, 64, 3, 3)
    assert shapes["res5.2.conv2.weight"] == (256, 64, 3, 3)  # 4 groups
    assert "res2.0.conv2_offset.weight" not in shapes


def test_detectron2_format_checkpoint_of_a_deformable_resnet_loads(tmp_path):
    """A model-zoo style .pkl (numpy arrays, detectron2's key names for DeformBottleneckBlock,
    written from detectron2's own modules) loads into our DCN backbone with nothing missing or
    unexpected, and the values arrive."""
    torch.manual_seed(0)
    theirs = _tiny_deform_resnet(d2_resnet)
    for p in theirs.state_dict().values():
        p.copy_(torch.randn_like(p))
    weights = {f"backbone.bottom_up.{k}": v.numpy() for k, v in theirs.state_dict().items()}
    path = str(tmp_path / "dcn_model.pkl")
    with open(path, "wb") as f:
        pickle.dump({"model": weights, "__author__": "Detectron2 Model Zoo"}, f)

    model = tiny_ddod()
    model.backbone.bottom_up = _tiny_deform_resnet(ddod.modeling.deform_resnet)
    from detectron2.modeling.backbone import FPN

    model.backbone = FPN(
        bottom_up=model.backbone.bottom_up,
        in_features=["res3", "res4", "res5"],
        out_channels=32,
        top_block=model.backbone.top_block,
    )
    checkpointer = DetectionCheckpointer(model)
    incompatible = checkpointer._load_model(checkpointer._load_file(path))
    assert not incompatible.unexpected_keys and not incompatible.incorrect_shapes
    missing_backbone = [k for k in incompatible.missing_keys if k.startswith("backbone.bottom_up")]
    assert not missing_backbone
    ours = model.backbone.bottom_up.state_dict()
    for k, v in theirs.state_dict().items():
        torch.testing.assert_close(ours[k], v, msg=k)


def test_yacs_deformable_backbone_builds_and_runs():
    cfg = small_yacs_cfg()
    cfg.MODEL.RESNETS.DEPTH = 50
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 16
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.NUM_GROUPS = 2
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 8
    cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE = [False, True, True, True]
    cfg.MODEL.RESNETS.DEFORM_MODULATED = True
    model = build_model(cfg)
    bottom_up = model.backbone.bottom_up
    assert isinstance(bottom_up.res4[0], DeformBottleneckBlock)
    assert not isinstance(bottom_up.res2[0], DeformBottleneckBlock)
    assert bottom_up.res3[0].conv2_offset.weight.shape == (27, 32, 3, 3)
    assert bottom_up.res3[0].conv2.groups == 2
    # the detector trains with this backbone in test_dcn_config_trains_at_reduced_width
    bottom_up.train()
    sum(v.sum() for v in bottom_up(torch.randn(1, 3, 64, 64)).values()).backward()
    assert bottom_up.res5[0].conv2_offset.weight.grad.abs().sum() > 0


def _meta_param_count(**kwargs):
    with torch.device("meta"):
        net = ResNet(BasicStem(3, 64, norm="BN"), make_resnet_stages(norm="BN", **kwargs))
    return sum(p.numel() for p in net.parameters())


def test_full_width_backbones_have_torchvisions_sizes():
    """Parameters without the classifier (torchvision's counts minus fc's 2,049,000): the depths
    and group widths are the published networks."""
    assert _meta_param_count(depth=50) == 25_557_032 - 2_049_000
    assert _meta_param_count(depth=101) == 44_549_160 - 2_049_000
    assert _meta_param_count(depth=101, num_groups=32, width_per_group=8) == 88_791_336 - 2_049_000
    assert _meta_param_count(depth=101, num_groups=64, width_per_group=4) == 83_455_272 - 2_049_000
    # DCN adds only the offset convs: 27 x C x 9 weights + 27 biases per block of res3-res5
    dcn = _meta_param_count(
        depth=101, deform_on_per_stage=[False, True, True, True], deform_modulated=True
    )
    extra = sum(n * (27 * c * 9 + 27) for n, c in [(4, 128), (23, 256), (3, 512)])
    assert dcn == 44_549_160 - 2_049_000 + extra


def _name_settings(path):
    """What a config's file name says: (method, backbone, dcn, schedule)."""
    name = os.path.basename(path)[: -len(".py")]
    m = re.fullmatch(r"(ddod|atss|vfnet)_(R50|R101|X101_32x4d|X101_64x4d|X101_32x8d)(_dcn)?_(\w+)",
                     name)  # fmt: skip
    assert m, name
    method, backbone, dcn, schedule = m.groups()
    return method, backbone.replace("_", "-").replace("R", "R-").replace("X", "X-"), bool(dcn), \
        schedule  # fmt: skip


@pytest.mark.parametrize("path", BACKBONE_CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_backbone_config_is_what_its_name_and_row_say(path):
    cfg = LazyConfig.load(path)
    method, backbone, dcn, schedule = _name_settings(path)
    stages = cfg.model.backbone.bottom_up.stages
    depth, groups, width = {
        "R-50": (50, 1, 64),
        "R-101": (101, 1, 64),
        "X-101-32x4d": (101, 32, 4),
        "X-101-64x4d": (101, 64, 4),
        "X-101-32x8d": (101, 32, 8),
    }[backbone]
    assert (stages.depth, stages.num_groups, stages.width_per_group) == (depth, groups, width)
    assert list(stages.deform_on_per_stage) == ([False, True, True, True] if dcn else [False] * 4)
    assert stages.deform_modulated == dcn
    # MSRA weights are caffe-style (stride in 1x1, std 1); the ResNeXts are PyTorch-style
    msra = backbone.startswith("R-")
    assert stages.stride_in_1x1 == msra and (cfg.model.pixel_std == [1.0, 1.0, 1.0]) == msra
    assert cfg.train.init_checkpoint.endswith({
        "R-50": "MSRA/R-50.pkl",
        "R-101": "MSRA/R-101.pkl",
        "X-101-32x8d": "FAIR/X-101-32x8d.pkl",
        "X-101-32x4d": "resnext101_32x4d_d2.pkl",
        "X-101-64x4d": "resnext101_64x4d_d2.pkl",
    }[backbone])  # fmt: skip
    # schedule: 2x = 180k iterations, steps at 2/3 and 8/9 (ours) or epochs 16 and 22 (VFNet)
    sched = instantiate(cfg.lr_multiplier)
    iters = {"1x": 90000, "2x": 180000, "ms2x": 180000}[schedule]
    assert cfg.train.max_iter == iters and cfg.dataloader.train.total_batch_size == 16
    first_step = iters * (8 / 12 if method == "vfnet" and schedule == "1x" else 2 / 3)
    assert sched((first_step - 1) / iters) == 1.0
    assert sched((first_step + 1) / iters) == pytest.approx(0.1)
    resize = cfg.dataloader.train.mapper.augmentations[0]
    if schedule == "ms2x":
        expected = [480, 960] if method == "vfnet" else [640, 800]
        assert list(resize.short_edge_length) == expected and resize.sample_style == "range"
    else:
        assert resize.short_edge_length == 800
    assert resize.max_size == 1333
    # the row
    paper = cfg.paper
    assert paper.method == {"ddod": "DDOD", "atss": "ATSS", "vfnet": "VFNet"}[method]
    assert backbone in paper.row and ("DCN" in paper.row) == dcn
    # every AP recorded is test-dev (the VFNet releases' val2017 AP is ``val``, within 1 AP)
    assert paper.split == "test-dev" and 40 < paper.AP < 52
    assert method != "vfnet" or abs(paper.val - paper.AP) < 1
    table = os.path.basename(os.path.dirname(path))
    assert cfg.train.output_dir == f"./output/paper_backbones/{table}/{os.path.basename(path)[:-3]}"
    # it builds (at 1/4 width: tests/test_configs.py builds every config at full width)
    _reduce_width(cfg)
    blocks = list(instantiate(cfg.model).backbone.bottom_up.modules())
    assert any(isinstance(b, DeformBottleneckBlock) for b in blocks) == dcn


def _reduce_width(cfg):
    cfg.model.backbone.bottom_up.stem.out_channels = 16
    cfg.model.backbone.bottom_up.stages.base_channels = 16


def test_dcn_config_trains_at_reduced_width():
    # the grouped (ResNeXt) blocks are many small ops, slow on a busy CPU; they are built
    # by the test above and run by the block tests
    config = "table4_vfnet_test_dev/vfnet_R50_dcn_ms2x.py"
    cfg = LazyConfig.load(os.path.join(ROOT, "configs", "paper_backbones", config))
    _reduce_width(cfg)
    model = instantiate(cfg.model)
    model.train()
    with EventStorage():
        losses = model([make_input(64, 96, [[10, 20, 60, 50]], [3])])
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.backbone.bottom_up.res4[0].conv2_offset.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("config,short_edges", [
    ("table8_test_dev/ddod_R101_ms2x.py", (640, 800)),
    ("table4_vfnet_test_dev/vfnet_R101_ms2x.py", (480, 960)),
])  # fmt: skip
def test_multiscale_training_draws_every_size_of_its_range(config, short_edges):
    cfg = LazyConfig.load(os.path.join(ROOT, "configs", "paper_backbones", config))
    resize = instantiate(cfg.dataloader.train.mapper.augmentations[0])
    lo, hi = short_edges
    np.random.seed(0)
    image = np.zeros((480, 640, 3), np.uint8)
    drawn = [resize.get_transform(image).new_h for _ in range(40 * (hi - lo + 1))]
    assert set(drawn) == set(range(lo, hi + 1))  # uniform integers, both ends included
    # the long side stays within 1333: a 1:3 image's short side is cut to 444
    wide = np.zeros((300, 900, 3), np.uint8)
    sizes = {(t.new_h, t.new_w) for t in (resize.get_transform(wide) for _ in range(200))}
    assert sizes == {(444, 1333)}


def test_torchvision_weights_convert_to_the_same_network(tmp_path):
    """tools/convert_torchvision_resnet.py: a torchvision ResNeXt's file, converted, gives our
    PyTorch-style ResNeXt (stride in the 3x3, FrozenBN) the same res5 on the BGR image."""
    import torchvision

    from tools.convert_torchvision_resnet import main as convert

    torch.manual_seed(0)
    theirs = torchvision.models.resnet.ResNet(
        torchvision.models.resnet.Bottleneck, [3, 4, 6, 3], groups=4, width_per_group=16
    ).eval()
    for m in theirs.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    torch.save(theirs.state_dict(), tmp_path / "tv.pth")
    convert([str(tmp_path / "tv.pth"), str(tmp_path / "d2.pkl")])

    ours = ResNet(
        BasicStem(3, 64, norm="FrozenBN"),
        make_resnet_stages(50, num_groups=4, width_per_group=16, stride_in_1x1=False),
        out_features=["res5"],
    )
    holder = torch.nn.Module()
    holder.backbone = torch.nn.Module()
    holder.backbone.bottom_up = ours
    checkpointer = DetectionCheckpointer(holder)
    incompatible = checkpointer._load_model(checkpointer._load_file(str(tmp_path / "d2.pkl")))
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    rgb = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        t = theirs.maxpool(theirs.relu(theirs.bn1(theirs.conv1(rgb))))
        t = theirs.layer4(theirs.layer3(theirs.layer2(theirs.layer1(t))))
        torch.testing.assert_close(ours(rgb.flip(1))["res5"], t, rtol=1e-4, atol=1e-4)


def test_backbone_benchmark_counts_and_times(capsys):
    from benchmarks import backbones

    argv = ["--size", "64", "96", "--runs", "1", "--backbones", "R-50", "--base-channels", "16"]
    results = backbones.main(argv)
    (plain_params, plain_flops), (dcn_params, dcn_flops) = results["R-50"].values()
    offsets = sum(n * (27 * c * 9 + 27) for n, c in [(4, 32), (6, 64), (3, 128)]) / 1e6
    assert dcn_params == pytest.approx(plain_params + offsets)
    # the deformable convs count as the plain ones; the offset convs (27 x C x 9 multiply-adds
    # per output pixel) come on top; res3-res5 outputs are 8x12, 4x6, 2x3 pixels
    offset_flops = sum(n * 27 * c * 9 * hw for n, c, hw in [(4, 32, 96), (6, 64, 24), (3, 128, 6)])
    assert dcn_flops - plain_flops == pytest.approx(offset_flops / 1e9)
    rows = {(b, c) for b in ("R-50", "R-50-DCN") for c in ("fwd", "fwd+bwd")}
    assert set(results["timing"]) == rows
    assert "| R-50-DCN |" in capsys.readouterr().out
