"""Test-time augmentation (modeling/test_time_augmentation.py) and ``test.aug`` with
``train_net.py --eval-only``."""
import os

import pytest
import torch

import ddod  # noqa: F401  (compat + registrations)
from detectron2.config import instantiate
from detectron2.structures import Boxes, pairwise_iou

from ddod.engine import DetectionCheckpointer
from ddod.modeling import BoxVoting, DenseDetectorWithTTA
from ddod.utils.tool_setup import load_config

from .common import digits_datasets, digits_overrides, load_train_net, tiny_ddod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "quickstart", "ddod_digits_cpu.py")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    with digits_datasets(str(tmp_path_factory.mktemp("digits")), "tta", 8, 2) as names:
        yield names


@pytest.fixture(scope="module")
def quickstart_checkpoint(digits, tmp_path_factory):
    """A quickstart model trained for 6 iterations through train_net.py: model_final.pth."""
    out = str(tmp_path_factory.mktemp("run"))
    argv = ["--config-file", CONFIG, f"train.output_dir={out}", "train.max_iter=6",
            "train.checkpointer.period=100", "dataloader.train.total_batch_size=2",
            "train.eval_period=0"] + digits_overrides(digits)  # fmt: skip
    train_net = load_train_net()
    train_net.main(train_net.build_argument_parser().parse_args(argv))
    return os.path.join(out, "model_final.pth")


def _quickstart_model(checkpoint):
    cfg = load_config(CONFIG, ["model.test_score_thresh=0.02"])
    model = instantiate(cfg.model).eval()
    DetectionCheckpointer(model).load(checkpoint)
    return model


def _instances_equal(a, b):
    assert len(a) == len(b) > 0
    assert torch.allclose(a.pred_boxes.tensor, b.pred_boxes.tensor, atol=1e-4)
    assert torch.allclose(a.scores, b.scores)
    assert torch.equal(a.pred_classes, b.pred_classes)


def test_flip_tta_on_symmetric_image_gives_mirrored_detections(quickstart_checkpoint):
    """On a horizontally symmetric image the flipped view sees the same pixels, so its
    candidates, mapped back, are the mirror images of the plain view's: every merged detection
    has its mirror image among the detections, or overlaps it beyond the NMS threshold (then
    one of the pair suppressed the other)."""
    model = _quickstart_model(quickstart_checkpoint)
    g = torch.Generator().manual_seed(0)
    half = torch.randint(0, 256, (3, 256, 128), dtype=torch.uint8, generator=g)
    image = torch.cat([half, half.flip(-1)], dim=-1)
    tta = DenseDetectorWithTTA(model, min_sizes=[256], flip=True)
    inst = tta([{"image": image}])[0]["instances"]
    plain = model([{"image": image}])[0]["instances"]
    assert len(inst) > 5
    assert not torch.allclose(
        inst.pred_boxes.tensor[:5], plain.pred_boxes.tensor[:5]
    ), "the flipped view changed nothing"  # fmt: skip
    boxes = inst.pred_boxes.tensor
    mirrored = torch.stack([256 - boxes[:, 2], boxes[:, 1], 256 - boxes[:, 0], boxes[:, 3]], 1)
    iou_all = pairwise_iou(Boxes(mirrored), Boxes(boxes))  # (D, D)
    same_class = inst.pred_classes[:, None] == inst.pred_classes[None, :]
    same_score = (inst.scores[:, None] - inst.scores[None, :]).abs() < 1e-6
    has_mirror = ((iou_all > 0.999) & same_class & same_score).any(dim=1)
    self_overlap = iou_all.diagonal() > model.test_nms_thresh
    assert (has_mirror | self_overlap).all()
    assert has_mirror.sum() >= len(inst) // 2


def test_tta_of_identical_views_equals_single_view(quickstart_checkpoint):
    model = _quickstart_model(quickstart_checkpoint)
    image = torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8, generator=torch.Generator())
    plain = model([{"image": image}])[0]["instances"]
    single = DenseDetectorWithTTA(model, min_sizes=[256], flip=False)
    _instances_equal(single([{"image": image}])[0]["instances"], plain)
    # the same view twice: every candidate has an identical twin (IoU 1), suppressed by NMS,
    # and averaged with itself by box voting
    for merge in (None, BoxVoting(nms_thresh=model.test_nms_thresh, vote_thresh=0.99)):
        twice = DenseDetectorWithTTA(model, min_sizes=[256, 256], flip=False, merge=merge)
        _instances_equal(twice([{"image": image}])[0]["instances"], plain)


def test_tta_maps_scaled_views_to_the_requested_frame():
    """A view at the image's own size reported at twice the size (height/width of the input
    dict) equals the model's own rescaled output (detector_postprocess)."""
    torch.manual_seed(0)
    model = tiny_ddod(test_score_thresh=0.0).eval()
    image = torch.rand(3, 128, 160) * 255
    inputs = [{"image": image, "height": 256, "width": 320}]
    plain = model(inputs)[0]["instances"]
    tta = DenseDetectorWithTTA(model, min_sizes=[128], flip=False)([dict(inputs[0])])
    _instances_equal(tta[0]["instances"], plain)
    assert tta[0]["instances"].image_size == (256, 320)
    # a larger view: boxes still in the requested frame
    big = DenseDetectorWithTTA(model, min_sizes=[256], max_size=400, flip=True)(inputs)
    boxes = big[0]["instances"].pred_boxes.tensor
    assert len(boxes) and boxes[:, 2].max() <= 320 and boxes[:, 3].max() <= 256


def test_eval_only_with_test_aug(digits, quickstart_checkpoint, tmp_path):
    """``train_net.py --eval-only test.aug.enabled=True`` evaluates through the TTA wrapper."""
    train_net = load_train_net()
    base = ["--config-file", CONFIG, "--eval-only", f"train.init_checkpoint={quickstart_checkpoint}",
            f"train.output_dir={tmp_path}"] + digits_overrides(digits)  # fmt: skip
    parser = train_net.build_argument_parser()
    results = train_net.main(parser.parse_args(base + [
        "test.aug.enabled=True", "test.aug.min_sizes=[224,256]", "test.aug.merge.method=voting",
    ]))  # fmt: skip
    assert "AP" in results["bbox"]
    with pytest.raises(ValueError, match="test.aug.merge.method"):
        train_net.main(parser.parse_args(base + [
            "test.aug.enabled=True", "test.aug.merge.method=average",
        ]))  # fmt: skip


def test_tta_rejects_models_without_candidates():
    with pytest.raises(TypeError, match="candidates"):
        DenseDetectorWithTTA(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="min_sizes"):
        DenseDetectorWithTTA(tiny_ddod(), min_sizes=[])
