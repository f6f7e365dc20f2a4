"""Export round trips (ddod/export, tools/export_model.py) for every detector family.

The families are the model definition files ``configs/common/models/*.py`` (a file that defines
``model``; helpers such as backbones.py and disentangle.py define none). Each one is built at toy
width, exported to TorchScript and to ONNX, and the exported file's detections (TorchScript in
torch, ONNX in onnxruntime) must equal the eager model's. A family added later joins these tests
automatically: it fails them until it exports, or until it is listed in NOT_EXPORTABLE with the
reason.
"""
import glob
import importlib.util
import os

import onnx
import pytest
import torch

import ddod  # noqa: F401  (compat + registrations)
from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ShapeSpec

from ddod.export import (
    NotExportableError,
    compare_detections,
    eager_detections,
    export_model,
    letterbox,
    load_exported,
)
from ddod.modeling import SoftNMS

from .common import load_tool, tiny_ddod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(ROOT, "configs", "common", "models")

# {family (file name without .py): why it cannot be exported}. Empty: every family exports.
NOT_EXPORTABLE = {}


def model_families():
    """{name: LazyConfig of its ``model``} for every file of configs/common/models/ that defines
    a model."""
    families = {}
    for path in sorted(glob.glob(os.path.join(MODELS_DIR, "*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if name.startswith("_"):
            continue
        cfg = LazyConfig.load(path)
        if "model" in cfg:
            families[name] = cfg.model
    return families


# TSCODE is a plug-in of the heads (configs/common/models/tscode.py), not a model file: its
# main hosts join as families of their own (SCE's pixel shuffle, DPE's res2 input)
TSCODE_HOSTS = ("ddod", "gfl")
FAMILIES = model_families()
FAMILIES.update({f"{host}+tscode": FAMILIES[host] for host in TSCODE_HOSTS})


def _use_tscode():
    """``use_tscode`` of configs/common/models/tscode.py (LazyConfig.load keeps no functions)."""
    path = os.path.join(MODELS_DIR, "tscode.py")
    spec = importlib.util.spec_from_file_location("tscode_cfg", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.use_tscode


def _set(node, key, value):
    """Set ``node.key`` only where the family's model has that key (families differ)."""
    if node is not None and key in node:
        node[key] = value


def tiny(model_cfg, width=32):
    """A toy-width copy of a family's model: R18 at 8 base channels with BN, FPN and head at
    ``width`` channels, one conv per tower, 3 classes, every (anchor, class) pair a candidate."""
    fpn = model_cfg.backbone
    # a neck that wraps the FPN (SSHNeck) takes its widths from it
    while "bottom_up" not in fpn and "backbone" in fpn:
        _set(fpn, "norm", "BN")  # GN(32) does not divide SSH's quarter-width branches at 32
        fpn = fpn.backbone
    bottom_up = fpn.get("bottom_up")
    if bottom_up is not None:
        _set(bottom_up.get("stem"), "out_channels", 8)
        _set(bottom_up.get("stem"), "norm", "BN")
        _set(bottom_up.get("stages"), "depth", 18)
        _set(bottom_up.get("stages"), "base_channels", 8)
        _set(bottom_up.get("stages"), "norm", "BN")
        # R18 has no bottleneck blocks to deform (deformable backbones: see the README)
        _set(bottom_up.get("stages"), "deform_on_per_stage", [False] * 4)
        _set(bottom_up, "freeze_at", 0)
    _set(fpn, "out_channels", width)
    top = fpn.get("top_block")
    # P6 from P5 (FPN width) or from res5 (RetinaNet: R18 at 8 base channels has 64 there)
    from_res5 = top is not None and str(top.get("in_feature", "p5")).startswith("res")
    _set(top, "in_channels", 64 if from_res5 else width)
    _set(top, "out_channels", width)
    head = model_cfg.head
    if "input_shape" in head:
        head.input_shape = [ShapeSpec(channels=width)] * len(head.input_shape)
    _set(head, "conv_dims", width)
    _set(head, "num_convs", 1)
    model_cfg.num_classes = 3
    # random weights score about the prior (0.01): keep every pair, so NMS has work to do
    model_cfg.test_score_thresh = 0.0
    model_cfg.test_topk_candidates = 200
    model_cfg.max_detections_per_image = 50
    return model_cfg


def build_tiny(name):
    """The family's toy model with calibrated BatchNorm statistics: with the initial ones
    (mean 0, variance 1) a random ResNet's features grow layer after layer until scores
    saturate at 1.0 and tie, and two NMS implementations may break the ties differently."""
    torch.manual_seed(0)
    host, _, plugin = name.partition("+")
    model_cfg = tiny(LazyConfig.load(os.path.join(MODELS_DIR, f"{host}.py")).model)
    if plugin == "tscode":
        _use_tscode()(model_cfg)  # after tiny(): it reads the final widths
    model = instantiate(model_cfg)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model.backbone(model.preprocess_image([{"image": x} for x in sample_images()]).tensor)
    return model.eval()


def sample_images(num=2, size=(160, 224)):
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=g) for _ in range(num)]


def test_not_exportable_list_names_existing_families():
    assert set(NOT_EXPORTABLE) <= set(FAMILIES), "stale NOT_EXPORTABLE entries"
    assert {"ddod", "atss"} <= set(FAMILIES)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_export_round_trip(family, fmt, tmp_path):
    if family in NOT_EXPORTABLE:
        model = build_tiny(family)
        with pytest.raises(NotExportableError):
            export_model(model, sample_images(1)[0], fmt, str(tmp_path))
        return
    model = build_tiny(family)
    images = sample_images()
    path = export_model(model, images[0], fmt, str(tmp_path))
    run = load_exported(path)
    for image in images:
        eager = eager_detections(model, image)
        assert len(eager[1]) > 10  # a check with something to compare
        report = compare_detections(eager, run(image))
        assert report["equal"], f"{family} {fmt}: {report}"
    if fmt == "onnx":
        ops = {n.op_type for n in onnx.load(path).graph.node}
        assert "NonMaxSuppression" in ops
        # the deformable convs stay deformable (DDOD's towers, VFNet's star DCN)
        has_deform = any(
            type(m).__name__ == "DeformConv2d" for m in model.modules()
        )  # fmt: skip
        assert ("DeformConv" in ops) == has_deform


def test_ddod_has_deformable_convs_and_atss_has_none():
    """The parametrised round trip covers both: DDOD's graph has DeformConv nodes, ATSS's none."""
    kinds = {
        name: any(type(m).__name__ == "DeformConv2d" for m in build_tiny(name).modules())
        for name in ("ddod", "atss")
    }
    assert kinds == {"ddod": True, "atss": False}


def test_soft_nms_model_is_not_exportable_with_reason(tmp_path):
    model = tiny_ddod(postprocess=SoftNMS("gaussian")).eval()
    with pytest.raises(NotExportableError, match="Soft-NMS.*ClassAwareNMS"):
        export_model(model, sample_images(1)[0], "onnx", str(tmp_path))
    assert not os.listdir(tmp_path)
    with pytest.raises(ValueError, match="opset"):
        export_model(tiny_ddod().eval(), sample_images(1)[0], "onnx", str(tmp_path), opset=18)


def test_letterbox_keeps_aspect_and_pads():
    image = torch.full((3, 100, 50), 7, dtype=torch.uint8)
    out, scale = letterbox(image, 200, 200)
    assert scale == 2.0 and out.shape == (3, 200, 200) and out.dtype == torch.uint8
    assert (out[:, :, :100] == 7).all() and (out[:, :, 100:] == 0).all()


def test_export_tool_on_quickstart_config(tmp_path):
    """tools/export_model.py end to end: a saved checkpoint, the digits config, the check."""
    tool = load_tool("export_model")
    config = os.path.join(ROOT, "configs", "quickstart", "ddod_digits_cpu.py")
    torch.manual_seed(0)
    cfg = LazyConfig.load(config)
    cfg.model.test_score_thresh = 0.0
    model = instantiate(cfg.model)
    ckpt = tmp_path / "weights.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    out = tmp_path / "export"
    args = tool.parse_args([
        "--config-file", config, "--format", "torchscript", "--output", str(out),
        "--size", "192", "192", "--num-check-images", "1",
        f"train.init_checkpoint={ckpt}", "model.test_score_thresh=0.0",
        # no dataset needed: random images when the test set is absent
        "dataloader.test.dataset.names=no_such_dataset_for_export_test",
    ])  # fmt: skip
    result = tool.main(args)
    assert os.path.exists(result["path"]) and (out / "export.json").exists()
    assert result["checks"] and result["checks"][0]["equal"]
    assert result["checks"][0]["count"][0] > 0
