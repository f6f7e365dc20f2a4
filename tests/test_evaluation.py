"""Tests for ddod.evaluation, ddod.utils.visualize and tools/visualize_predictions.py."""

import importlib.util
import json
import uuid
from pathlib import Path

import pytest
import torch
from PIL import Image

import ddod  # noqa: F401  (must come before detectron2 submodules)
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, BoxMode, Instances

from ddod.compat import has_compiled_ops
from ddod.data import digits as digits_module
from ddod.data import register_coco_dataset, register_digits_dataset
from ddod.evaluation import build_coco_evaluator
from ddod.utils.visualize import save_prediction_images

REPO = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 256


@pytest.fixture(scope="module")
def digits_val(tmp_path_factory):
    """A tiny digits val set registered under a unique name that was never loaded."""
    name = f"digits_pytest_eval_{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("digits")
    register_digits_dataset(name, split="val", root=root, num_images=6)
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)
    digits_module._REGISTERED.pop(name)


def _gt_as_predictions(json_file):
    """Per image: (image_id, Instances of the ground truth with score 1)."""
    with open(json_file) as f:
        coco = json.load(f)
    outputs = []
    for image in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32)
        boxes[:, 2:] += boxes[:, :2]  # XYWH -> XYXY
        instances = Instances((image["height"], image["width"]))
        instances.pred_boxes = Boxes(boxes)
        instances.scores = torch.ones(len(anns))
        instances.pred_classes = torch.tensor([a["category_id"] - 1 for a in anns])
        outputs.append((image["id"], instances))
    return outputs


def test_perfect_predictions_give_ap_100(digits_val, tmp_path):
    # Built before the dataset was ever loaded: the evaluator must generate it itself.
    evaluator = build_coco_evaluator(digits_val, output_dir=str(tmp_path))
    assert evaluator._use_fast_impl is has_compiled_ops()
    assert not has_compiled_ops()  # this environment has detectron2's Python sources only
    evaluator.reset()
    for image_id, instances in _gt_as_predictions(MetadataCatalog.get(digits_val).json_file):
        evaluator.process([{"image_id": image_id}], [{"instances": instances}])
    results = evaluator.evaluate()
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert results["bbox"]["AP50"] == pytest.approx(100.0)
    assert (tmp_path / "coco_instances_results.json").is_file()


def test_evaluator_reports_missing_json(tmp_path):
    name = f"pytest_eval_missing_{uuid.uuid4().hex[:8]}"
    register_coco_dataset(name, tmp_path / "missing.json", tmp_path)
    try:
        with pytest.raises(FileNotFoundError, match="missing.json"):
            build_coco_evaluator(name)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_save_prediction_images(digits_val, tmp_path):
    dicts = DatasetCatalog.get(digits_val)[:3]
    predictions = []
    for d in dicts:
        boxes = [
            BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]
        ]
        instances = Instances((d["height"], d["width"]))
        instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
        instances.scores = torch.linspace(0.1, 1.0, len(boxes))
        instances.pred_classes = torch.tensor([a["category_id"] for a in d["annotations"]])
        predictions.append({"instances": instances})
    metadata = MetadataCatalog.get(digits_val)

    paths = save_prediction_images(
        predictions=predictions,
        dataset_dicts=dicts,
        metadata=metadata,
        output_dir=str(tmp_path / "pred"),
        max_images=2,
        show_gt=False,
    )
    assert len(paths) == 2
    for path in paths:
        with Image.open(path) as image:
            # one titled panel, the image drawn at 1.5x (a 256-px image is small to read)
            assert image.format == "PNG" and image.width > 1.5 * IMAGE_SIZE
            single = image.size

    paths = save_prediction_images(
        predictions=predictions,
        dataset_dicts=dicts,
        metadata=metadata,
        output_dir=str(tmp_path / "with_gt"),
        show_gt=True,
    )
    assert len(paths) == 3
    with Image.open(paths[0]) as image:
        # ground-truth and detection panels side by side
        assert image.width > 1.9 * single[0] and image.height == single[1]

    with pytest.raises(ValueError, match="one to one"):
        save_prediction_images(
            predictions=predictions[:1], dataset_dicts=dicts, metadata=metadata, output_dir="x"
        )


# A small RetinaNet (ResNet-18, 32-channel FPN and head) on the digits data config. The head uses
# norm="" because v0.6's RetinaNetHead with norm="GN" fails on torch 2.x.
_TINY_RETINANET_CONFIG = """
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.backbone import FPN, BasicStem, ResNet
from detectron2.modeling.backbone.fpn import LastLevelP6P7
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.meta_arch.retinanet import RetinaNet, RetinaNetHead

dataloader = LazyConfig.load({data_config!r}).dataloader
dataloader.test.dataset.names = {dataset_name!r}

model = L(RetinaNet)(
    backbone=L(FPN)(
        bottom_up=L(ResNet)(
            stem=L(BasicStem)(in_channels=3, out_channels=64, norm="BN"),
            stages=L(ResNet.make_default_stages)(depth=18, norm="BN"),
            out_features=["res3", "res4", "res5"],
        ),
        in_features=["res3", "res4", "res5"],
        out_channels=32,
        top_block=L(LastLevelP6P7)(in_channels=512, out_channels=32),
    ),
    head=L(RetinaNetHead)(
        input_shape=[ShapeSpec(channels=32)] * 5,
        num_classes=10,
        conv_dims=[32],
        norm="",
        num_anchors=3,
    ),
    anchor_generator=L(DefaultAnchorGenerator)(
        sizes=[[s] for s in [32, 64, 128, 256, 512]],
        aspect_ratios=[0.5, 1.0, 2.0],
        strides=[8, 16, 32, 64, 128],
        offset=0.0,
    ),
    box2box_transform=L(Box2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
    anchor_matcher=L(Matcher)(
        thresholds=[0.4, 0.5], labels=[0, -1, 1], allow_low_quality_matches=True
    ),
    num_classes=10,
    head_in_features=["p3", "p4", "p5", "p6", "p7"],
    pixel_mean=[103.530, 116.280, 123.675],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
)

train = dict(output_dir={output_dir!r}, init_checkpoint="", device="cuda")
"""


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        "visualize_predictions", REPO / "tools" / "visualize_predictions.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_visualize_predictions_tool(digits_val, tmp_path, capsys):
    config_file = tmp_path / "tiny_retinanet.py"
    config_file.write_text(
        _TINY_RETINANET_CONFIG.format(
            data_config=str(REPO / "configs" / "common" / "data" / "digits.py"),
            dataset_name=digits_val,
            output_dir=str(tmp_path / "out"),
        )
    )
    cfg = LazyConfig.load(str(config_file))
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("tiny")
    checkpoint = str(tmp_path / "tiny.pth")

    tool = _load_tool()
    args = tool.parse_args(
        ["--config-file", str(config_file), "--num-images", "2"]
        + ["--no-gt", "train.device=cpu", f"train.init_checkpoint={checkpoint}"]
    )
    paths = tool.main(args)
    output_dir = tmp_path / "out" / "predictions"
    assert len(paths) == 2 and all(Path(p).parent == output_dir for p in paths)
    assert str(output_dir) in capsys.readouterr().out
    for path in paths:
        with Image.open(path) as image:
            single = image.size

    # --output and --show-gt
    args = tool.parse_args(
        ["--config-file", str(config_file), "--num-images", "1", "--output", str(tmp_path / "o")]
        + ["--show-gt", "train.device=cpu", f"train.init_checkpoint={checkpoint}"]
    )
    (path,) = tool.main(args)
    assert Path(path).parent == tmp_path / "o"
    with Image.open(path) as image:
        assert image.width > 1.9 * single[0] and image.height == single[1]


def test_visualize_predictions_tool_loads_weights(digits_val, tmp_path, monkeypatch):
    """The drawn predictions come from the checkpoint in train.init_checkpoint."""
    config_file = tmp_path / "tiny_retinanet.py"
    config_file.write_text(
        _TINY_RETINANET_CONFIG.format(
            data_config=str(REPO / "configs" / "common" / "data" / "digits.py"),
            dataset_name=digits_val,
            output_dir=str(tmp_path / "out"),
        )
    )
    model = instantiate(LazyConfig.load(str(config_file)).model)
    checkpointer = DetectionCheckpointer(model, save_dir=str(tmp_path))
    # Predictions that ignore the image (the random backbone's features are huge): the anchors
    # themselves, scored sigmoid(3) everywhere, or sigmoid(-10) everywhere.
    with torch.no_grad():
        model.head.bbox_pred.weight.zero_()
        model.head.bbox_pred.bias.zero_()
        model.head.cls_score.weight.zero_()
        model.head.cls_score.bias.fill_(3.0)
        checkpointer.save("confident")
        model.head.cls_score.bias.fill_(-10.0)
        checkpointer.save("silent")

    tool = _load_tool()
    drawn = []
    monkeypatch.setattr(
        tool, "save_prediction_images", lambda **kwargs: drawn.extend(kwargs["predictions"]) or []
    )
    base = ["--config-file", str(config_file), "--num-images", "1", "train.device=cpu"]
    for name in ("confident", "silent"):
        tool.main(tool.parse_args(base + [f"train.init_checkpoint={tmp_path / name}.pth"]))
    confident, silent = drawn
    assert len(confident) > 0
    assert torch.allclose(confident.scores, torch.sigmoid(torch.tensor(3.0)))
    assert len(silent) == 0
