"""The picture tools on the digits dataset: assignment view, training curves, dataset browser and
prediction pictures (tools/visualize_assignments.py, plot_metrics.py, browse_dataset.py,
visualize_predictions.py)."""
import contextlib
import json
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

import ddod  # noqa: F401  (compat + registrations)
from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import default_argument_parser
from detectron2.structures import Boxes, Instances

from ddod.engine import DetectionCheckpointer
from ddod.modeling import ATSSAssigner, MaxIoUAssigner
from ddod.utils.assignment_view import KIND_COLORS, assignment_figure
from ddod.utils.assignments import record_assignments
from ddod.utils.panels import data_to_pixel, figure_to_array
from ddod.utils.tool_setup import load_config
from ddod.utils.visualize import prediction_figure, save_prediction_images

from .common import digits_datasets, digits_overrides, load_tool, load_train_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "quickstart", "ddod_digits_cpu.py")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Tiny digits train/val sets under names no other test uses."""
    with digits_datasets(str(tmp_path_factory.mktemp("digits")), "viz", 6, 3) as names:
        yield names


@pytest.fixture(scope="module")
def trained_run(digits, tmp_path_factory):
    """A 4-iteration quickstart run through train_net.py: metrics.json (losses, level weights,
    positives, AP of the final evaluation) and model_final.pth."""
    out = str(tmp_path_factory.mktemp("run"))
    argv = ["--config-file", CONFIG, f"train.output_dir={out}", "train.max_iter=4",
            "train.log_period=1", "train.checkpointer.period=100",
            "dataloader.train.total_batch_size=2"] + digits_overrides(digits)  # fmt: skip
    train_net = load_train_net()
    parser = getattr(train_net, "build_argument_parser", default_argument_parser)()
    train_net.main(parser.parse_args(argv))
    return out


@contextlib.contextmanager
def ddod_warnings():
    """The messages of the "ddod" loggers. A handler on the logger itself: detectron2's
    setup_logger (run by train_net) stops it from propagating to pytest's caplog."""
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("ddod")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def assert_picture(path):
    """A PNG that is not blank."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 10, f"{path} is (nearly) uniform"


# ------------------------------------------------------------------------------------------------
# assignment view
# ------------------------------------------------------------------------------------------------
def _mapped_inputs(cfg, count):
    dataset = instantiate(cfg.dataloader.train.dataset)
    mapper = instantiate(cfg.dataloader.train.mapper)
    return [mapper(dict(dataset[i])) for i in range(count)]


def test_assignment_view_draws_the_assigners_positives(digits):
    """Plain ATSS for classification and MaxIoU for regression (two geometric assigners, so the
    positives can be recomputed from anchors and boxes alone): the recorded labels are the
    assigners', and the picture has a disc of the right colour at every positive centre and
    none at a centre that is not positive."""
    cfg = load_config(CONFIG, digits_overrides(digits))
    cfg.model.cls_assigner = L(ATSSAssigner)(topk=9)
    cfg.model.reg_assigner = L(MaxIoUAssigner)(pos_iou_thresh=0.4, neg_iou_thresh=0.3)
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    (item,) = _mapped_inputs(cfg, 1)
    (assignment,) = record_assignments(model, [item])

    gt = item["instances"]
    assert np.allclose(assignment.gt_boxes, gt.gt_boxes.tensor.numpy())
    anchors = torch.as_tensor(assignment.anchors)
    for branch, assigner in (("cls", model.cls_assigner), ("reg", model.reg_assigner)):
        result = assigner(anchors, assignment.level_sizes, gt.gt_boxes.tensor, gt.gt_classes)
        matched = result.matched_gt
        assert np.array_equal(assignment.positives(branch), (matched >= 0).numpy()), branch
        assert assignment.positives(branch).sum() > 0
    assert not np.array_equal(assignment.positives("cls"), assignment.positives("reg"))
    assert model.training is False  # the recording left the model in eval mode

    scale = 2.0
    fig, axes = assignment_figure(assignment, scale=scale)
    pixels = figure_to_array(fig).astype(int)
    counts = assignment.level_counts()
    kinds_seen = set()
    for level, ax in enumerate(axes):
        name = assignment.level_names[level]
        assert f"cls {counts[name]['cls']} · reg {counts[name]['reg']}" in ax.get_title()
        # positives of this level straight from the labels (one anchor per location here)
        s = assignment.level_slices()[level]
        centres = (assignment.anchors[s, :2] + assignment.anchors[s, 2:]) / 2
        cls, reg = assignment.positives("cls")[s], assignment.positives("reg")[s]
        for kind, mask in (("cls", cls & ~reg), ("reg", reg & ~cls), ("both", cls & reg)):
            for x, y in centres[mask]:
                row, col = data_to_pixel(fig, ax, x, y)
                expected = np.array(KIND_COLORS[kind]) * 255
                assert np.abs(pixels[row, col] - expected).max() <= 3, (name, kind, x, y)
                kinds_seen.add(kind)
    assert {"cls", "both"} <= kinds_seen or {"reg", "both"} <= kinds_seen

    # A p3 anchor centre that is no positive, far from every positive and every GT box (whose
    # outline and label would be drawn there): the darkened image, no marker colour.
    s = assignment.level_slices()[0]
    centres = (assignment.anchors[s, :2] + assignment.anchors[s, 2:]) / 2
    positive = assignment.positives("cls")[s] | assignment.positives("reg")[s]
    boxes = assignment.gt_boxes
    x, y = centres[:, None, 0], centres[:, None, 1]
    far_from_gt = np.all(
        (x < boxes[None, :, 0] - 12) | (x > boxes[None, :, 2] + 12)
        | (y < boxes[None, :, 1] - 12) | (y > boxes[None, :, 3] + 12),
        axis=1,
    )  # fmt: skip
    candidates = np.nonzero(~positive & far_from_gt)[0]
    assert len(candidates), "no background anchor far from the objects in this image"
    x, y = centres[candidates[0]]
    row, col = data_to_pixel(fig, axes[0], x, y)
    for color in KIND_COLORS.values():
        assert np.abs(pixels[row, col] - np.array(color) * 255).max() > 60
    dimmed = assignment.image[int(y), int(x)] * 0.6
    assert np.abs(pixels[row, col] - dimmed).max() <= 2


def test_visualize_assignments_tool_uses_the_checkpoints_predictions(digits, tmp_path, monkeypatch):
    """DDOD's cost-based assignment depends on the predictions: the tool assigns with the weights
    of train.init_checkpoint and writes one non-blank picture per image."""
    cfg = load_config(CONFIG, digits_overrides(digits))
    inputs = _mapped_inputs(cfg, 2)
    labels = {}
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = instantiate(cfg.model).eval()
        DetectionCheckpointer(model, save_dir=str(tmp_path)).save(f"seed{seed}")
        labels[seed] = [(a.cls_labels, a.reg_labels) for a in record_assignments(model, inputs)]
    differs = any(not np.array_equal(a[0], b[0]) or not np.array_equal(a[1], b[1])
                  for a, b in zip(labels[1], labels[2]))  # fmt: skip
    assert differs, "two random models made the same cost-based assignment: the test is moot"

    tool = load_tool("visualize_assignments")
    recorded = []
    original = tool.record_assignments

    def spy(model, items):
        out = original(model, items)
        recorded.extend((a.cls_labels, a.reg_labels) for a in out)
        return out

    monkeypatch.setattr(tool, "record_assignments", spy)
    checkpoint = f"train.init_checkpoint={tmp_path / 'seed2.pth'}"
    args = tool.parse_args(
        ["--config-file", CONFIG, "--images", "2", "--output", str(tmp_path / "a"), checkpoint]
        + digits_overrides(digits)
    )
    paths = tool.main(args)
    assert len(paths) == 2
    for path in paths:
        assert_picture(path)
    for (cls, reg), (exp_cls, exp_reg) in zip(recorded, labels[2]):
        assert np.array_equal(cls, exp_cls) and np.array_equal(reg, exp_reg)


# ------------------------------------------------------------------------------------------------
# training curves
# ------------------------------------------------------------------------------------------------
def test_plot_metrics_reads_a_training_run(trained_run, tmp_path, capsys):
    tool = load_tool("plot_metrics")
    series = tool.read_metrics(trained_run)
    assert len(series["total_loss"]) == 4
    assert "level_weight/cls_p3" in series and "num_pos_reg" in series and "bbox/AP" in series

    path = tool.main(tool.parse_args([trained_run]))
    assert path == os.path.join(trained_run, "curves.png")
    assert_picture(path)
    assert "Saved training curves" in capsys.readouterr().out

    fig = tool.plot_runs([series, series], ["a", "b"])
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert set(panels) == {"Losses", "Learning rate", "Level weights: classification",
                           "Level weights: regression", "Positive anchors per image",
                           "COCO AP at evaluation"}  # fmt: skip
    # two runs: every level of each run is a curve, told apart in the legend
    labels = [line.get_label() for line in panels["Level weights: classification"].get_lines()]
    assert labels == [f"p{i} · {run}" for run in "ab" for i in range(3, 8)]

    # --keys: one panel per pattern; several runs into one --output
    out = str(tmp_path / "cmp.png")
    metrics_file = os.path.join(trained_run, "metrics.json")
    tool.main(tool.parse_args([trained_run, metrics_file, "--labels", "x", "y",
                               "--keys", "loss_*", "--output", out]))  # fmt: skip
    assert_picture(out)
    with pytest.raises(SystemExit, match="No key to plot"):
        tool.main(tool.parse_args([trained_run, "--keys", "nothing*", "--output", out]))


def test_plot_metrics_skips_rewritten_and_partial_lines(tmp_path):
    tool = load_tool("plot_metrics")
    lines = [{"iteration": 0, "total_loss": 3.0}, {"iteration": 1, "total_loss": 2.0},
             {"iteration": 1, "total_loss": 1.5}]  # fmt: skip
    (tmp_path / "metrics.json").write_text(
        "\n".join(json.dumps(x) for x in lines) + '\n{"iteration": 2, "total_lo'
    )
    assert tool.read_metrics(str(tmp_path))["total_loss"] == [(0, 3.0), (1, 1.5)]


# ------------------------------------------------------------------------------------------------
# dataset browser
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "test"])
def test_browse_dataset(digits, tmp_path, split):
    tool = load_tool("browse_dataset")
    args = tool.parse_args(["--config-file", CONFIG, "--split", split, "--num-images", "2",
                            "--output", str(tmp_path)] + digits_overrides(digits))  # fmt: skip
    paths = tool.main(args)
    assert len(paths) == 2
    for path in paths:
        assert_picture(path)


# ------------------------------------------------------------------------------------------------
# prediction pictures
# ------------------------------------------------------------------------------------------------
def _predictions(boxes, scores, classes, size=(256, 256)):
    instances = Instances(size)
    instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    instances.scores = torch.tensor(scores, dtype=torch.float32)
    instances.pred_classes = torch.tensor(classes, dtype=torch.int64)
    return instances


def test_prediction_pictures_label_panels_and_say_when_nothing_passes(digits, tmp_path):
    dataset_dict = DatasetCatalog.get(digits["val"])[0]
    image = np.asarray(Image.open(dataset_dict["file_name"]).convert("RGB"))
    metadata = MetadataCatalog.get(digits["val"])
    num_gt = len(dataset_dict["annotations"])
    confident = _predictions([[10, 10, 60, 60], [100, 100, 150, 150]], [0.9, 0.1], [3, 4])

    fig = prediction_figure(image, confident, dataset_dict, metadata=metadata, score_thresh=0.5)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"Ground truth: {num_gt} objects", "Detections (score ≥ 0.50): 1"]
    fig = prediction_figure(image, confident, dataset_dict, metadata=metadata, score_thresh=0.95)
    assert fig.axes[1].get_title() == "Detections (score ≥ 0.95): NONE (best score 0.90)"
    fig = prediction_figure(image, confident, dataset_dict, show_gt=False)
    assert [ax.get_title() for ax in fig.axes] == ["Detections (score ≥ 0.30): 1"]

    with ddod_warnings() as messages:
        (path,) = save_prediction_images(
            predictions=[confident], dataset_dicts=[dataset_dict], metadata=metadata,
            output_dir=str(tmp_path), score_thresh=0.95,
        )  # fmt: skip
    assert_picture(path)
    assert any("no detection has a score >= 0.95 (highest score: 0.900)" in m for m in messages)


def test_visualize_predictions_tool_on_trained_weights(digits, trained_run, tmp_path):
    tool = load_tool("visualize_predictions")
    checkpoint = os.path.join(trained_run, "model_final.pth")
    base = ["--config-file", CONFIG, "--num-images", "2", "--output", str(tmp_path)]
    overrides = [f"train.init_checkpoint={checkpoint}"] + digits_overrides(digits)
    paths = tool.main(tool.parse_args(base + overrides))
    assert len(paths) == 2
    for path in paths:
        assert_picture(path)
    # A threshold nothing reaches: still a picture, and a warning that says why it is empty.
    with ddod_warnings() as messages:
        tool.main(tool.parse_args(base + ["--score-thresh", "1.01"] + overrides))
    assert any("2 of 2 pictures show no detection" in m for m in messages)
