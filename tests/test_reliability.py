"""Bad input, from the dataset files to the checkpoint: each case either trains normally or stops
with an error that says what is wrong and where.

Cases: images without annotations or with crowd boxes only; zero-area, inverted, non-finite and
partly/wholly out-of-image boxes (through the data path and into the model); an image with 1,000
objects (assignment memory stays bounded); missing, corrupt and truncated image files (an error
naming the file, or a logged skip with ``on_bad_image="skip"``); misspelt config keys; a checkpoint
of another model; a truncated checkpoint; checkpoints killed mid-write; non-finite losses; and
bfloat16 autocast on the CPU.
"""
import json
import math
import os
import re

import pytest
import torch
from PIL import Image

import ddod  # noqa: F401
from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.utils.events import EventStorage

from ddod.data import (
    DatasetImageError,
    build_resumable_train_loader,
    ensure_digits_split,
    get_detection_dataset_dicts_checked,
    register_coco_dataset,
    register_digits_dataset,
)
from ddod.engine import (
    CheckpointError,
    CheckpointMismatchError,
    ConfigOverrideError,
    DetectionCheckpointer,
)
from ddod.modeling import ATSSAssigner, CostATSSAssigner

from .common import LogCapture, load_train_net, make_input, tiny_ddod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "configs", "quickstart", "ddod_digits_cpu.py")
W, H = 64, 48


# ---------------------------------------------------------------------------------------------
# A small COCO-format dataset with every kind of odd annotation
# ---------------------------------------------------------------------------------------------
def _ann(image_id, bbox, iscrowd=0, category_id=1):
    return {"image_id": image_id, "bbox": bbox, "category_id": category_id, "iscrowd": iscrowd,
            "area": abs(bbox[2] * bbox[3]) if all(map(math.isfinite, bbox)) else 0}  # fmt: skip


ODD_IMAGES = {
    1: [],  # no annotations
    2: [_ann(2, [5, 5, 30, 30], iscrowd=1), _ann(2, [20, 10, 20, 20], iscrowd=1)],  # crowd only
    3: [
        _ann(3, [10, 10, 0, 20]),  # zero width
        _ann(3, [30, 30, -12, 8]),  # inverted (negative width)
        _ann(3, [4, 6, 20, 16]),  # valid
    ],
    4: [
        _ann(4, [-10, -5, 30, 25]),  # partly outside: clipped to (0, 0, 20, 20)
        _ann(4, [50, 30, 40, 40]),  # partly outside: clipped to (50, 30, 64, 48)
        _ann(4, [100, 100, 10, 10]),  # wholly outside
    ],
    5: [_ann(5, [float("nan"), 3, 10, 10]), _ann(5, [8, 8, 16, 12])],  # non-finite, valid
}


def _write_image(path, seed):
    g = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(H, W, 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(path)


def make_coco(directory, name, images, broken=None):
    """Write and register a COCO dataset; ``broken``: {image_id: "missing" | "corrupt" |
    "truncated"}. Returns the registered name."""
    broken = broken or {}
    image_dir = os.path.join(directory, "images")
    os.makedirs(image_dir, exist_ok=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "thing"}]}
    for image_id, annotations in images.items():
        file_name = f"{image_id:04d}.png"
        path = os.path.join(image_dir, file_name)
        kind = broken.get(image_id)
        if kind == "corrupt":
            with open(path, "wb") as f:
                f.write(b"this is not a png" * 20)
        elif kind == "truncated":
            _write_image(path, image_id)
            with open(path, "rb") as f:
                data = f.read()
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
        elif kind != "missing":
            _write_image(path, image_id)
        coco["images"].append({"id": image_id, "file_name": file_name, "width": W, "height": H})
        coco["annotations"] += annotations
    for i, annotation in enumerate(coco["annotations"]):
        annotation["id"] = i + 1
    json_file = os.path.join(directory, "annotations.json")
    with open(json_file, "w") as f:
        json.dump(coco, f)
    register_coco_dataset(name, json_file, image_dir)
    return name


@pytest.fixture
def registered():
    names = []
    yield names
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def mapper():
    return DatasetMapper(is_train=True, augmentations=[], image_format="BGR")


def first_batches(dataset, n, batch_size, **kwargs):
    loader = build_resumable_train_loader(
        dataset, mapper=mapper(), total_batch_size=batch_size, seed=0, **kwargs
    )
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == n:
            return out


def train_losses(model, batch):
    model.train()
    with EventStorage():
        return model(batch)


# ---------------------------------------------------------------------------------------------
# Odd annotations: data path, then the model
# ---------------------------------------------------------------------------------------------
def test_odd_annotations_through_the_data_path_and_the_model(tmp_path, registered):
    name = make_coco(str(tmp_path), "reliability_odd", ODD_IMAGES)
    registered.append(name)

    with LogCapture("ddod.data") as caplog:
        filtered = get_detection_dataset_dicts_checked(name)
    # The drops are logged with counts per reason and an example file.
    assert "dropped 4 of 10 annotations" in caplog.text
    for reason in ("zero or negative width/height", "entirely outside the image",
                   "non-finite coordinates"):  # fmt: skip
        assert reason in caplog.text
    # Training (filter_empty=True): no image without annotations or with crowd boxes only.
    assert sorted(d["image_id"] for d in filtered) == [3, 4, 5]
    by_id = {d["image_id"]: d for d in filtered}
    assert len(by_id[3]["annotations"]) == 1  # zero-width and inverted dropped
    assert len(by_id[4]["annotations"]) == 2  # wholly outside dropped
    assert len(by_id[5]["annotations"]) == 1  # NaN dropped

    # filter_empty=False keeps every image; the mapper then drops crowd boxes and clips.
    everything = get_detection_dataset_dicts_checked(name, filter_empty=False)
    assert sorted(d["image_id"] for d in everything) == [1, 2, 3, 4, 5]
    (batch,) = first_batches(everything, 1, 5, aspect_ratio_grouping=False, shuffle=False)
    mapped = {d["image_id"]: d["instances"].gt_boxes.tensor for d in batch}
    assert mapped[1].shape == (0, 4) and mapped[2].shape == (0, 4)
    assert mapped[3].tolist() == [[4, 6, 24, 22]]
    assert mapped[4].tolist() == [[0, 0, 20, 20], [50, 30, 64, 48]]
    assert mapped[5].tolist() == [[8, 8, 24, 20]]

    # The model trains on all of it: finite losses and gradients.
    torch.manual_seed(0)
    model = tiny_ddod(num_classes=1)
    losses = train_losses(model, batch)
    assert set(losses) >= {"loss_cls", "loss_bbox"}
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_images_without_valid_annotations_only(tmp_path, registered):
    name = make_coco(str(tmp_path), "reliability_empty", {k: ODD_IMAGES[k] for k in (1, 2)})
    registered.append(name)
    with pytest.raises(ValueError, match="No image of dataset 'reliability_empty' has a valid"):
        get_detection_dataset_dicts_checked(name)
    dicts = get_detection_dataset_dicts_checked(name, filter_empty=False)
    (batch,) = first_batches(dicts, 1, 2, aspect_ratio_grouping=False)
    torch.manual_seed(0)
    losses = train_losses(tiny_ddod(num_classes=1), batch)
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_cls"] > 0
    assert all(torch.isfinite(v) for v in losses.values())


# ---------------------------------------------------------------------------------------------
# 1,000 objects
# ---------------------------------------------------------------------------------------------
def _peak_cpu_bytes(fn):
    """Peak of (allocated - freed) CPU tensor memory while ``fn`` runs, from torch's profiler."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:  # fmt: skip
        fn()
    try:
        events = prof.profiler.kineto_results.events()
    except AttributeError:
        pytest.skip("this torch's profiler does not expose its allocation events")
    current = peak = 0
    for _, nbytes in sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]"):
        current += nbytes
        peak = max(peak, current)
    return peak


def _coco_sized_anchors():
    """Anchors of an 800x1344 input on P3-P7 (stride 8-128), one per location: 22k anchors."""
    strides = [8, 16, 32, 64, 128]
    generator = DefaultAnchorGenerator(
        sizes=[[8 * s] for s in strides], aspect_ratios=[1.0], strides=strides, offset=0.0
    )
    features = [torch.zeros(1, 1, math.ceil(800 / s), math.ceil(1344 / s)) for s in strides]
    anchors = generator(features)
    return torch.cat([a.tensor for a in anchors]), [len(a) for a in anchors]


def _many_boxes(num, width, height, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num, 2, generator=g) * torch.tensor([width - 40.0, height - 40.0])
    wh = torch.rand(num, 2, generator=g) * 36 + 4
    return torch.cat([xy, xy + wh], dim=1)


def test_1000_objects_assignment_memory_is_bounded():
    torch.manual_seed(0)
    anchors, per_level = _coco_sized_anchors()
    R, K = len(anchors), 80
    logits, pred_boxes = torch.randn(R, K), anchors + torch.randn(R, 4)
    peaks = {}
    for M, assigners in ((1000, (ATSSAssigner(), CostATSSAssigner(alpha=0.8))),
                         (2000, (CostATSSAssigner(alpha=0.8),))):  # fmt: skip
        gt = _many_boxes(M, 1344, 800)
        classes = torch.randint(0, K, (M,))
        for assigner in assigners:
            result = []
            peak = _peak_cpu_bytes(
                lambda: result.append(
                    assigner(anchors, per_level, gt, classes, pred_logits=logits,
                             pred_boxes=pred_boxes)  # fmt: skip
                )
            )
            assert (result[0].matched_gt >= 0).sum() > 0.5 * M  # most objects get positives
            peaks[(M, type(assigner).__name__)] = peak
    dense = R * 1000 * 4  # ONE float32 anchors x objects matrix for 1,000 objects: 85 MiB
    for name in ("ATSSAssigner", "CostATSSAssigner"):
        # Less than a single dense matrix (naive ATSS builds several, times the levels)...
        assert peaks[(1000, name)] < dense, (name, peaks[(1000, name)] / 2**20)
    # ...and twice the objects do not double it: the GTs are processed in bounded chunks.
    assert peaks[(2000, "CostATSSAssigner")] < 1.3 * peaks[(1000, "CostATSSAssigner")], peaks


def test_1000_objects_train_with_finite_losses():
    torch.manual_seed(0)
    model = tiny_ddod(num_classes=4)
    boxes = _many_boxes(1000, 256, 256).tolist()
    batch = [make_input(256, 256, boxes, [i % 4 for i in range(1000)])]
    losses = train_losses(model, batch)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()


# ---------------------------------------------------------------------------------------------
# Unreadable image files
# ---------------------------------------------------------------------------------------------
GOOD = {i: [_ann(i, [8, 8, 20, 16])] for i in range(1, 7)}


@pytest.mark.parametrize("kind", ["missing", "corrupt", "truncated"])
def test_unreadable_image_is_an_error_naming_the_file(tmp_path, registered, kind):
    name = make_coco(str(tmp_path), f"reliability_{kind}", GOOD, broken={3: kind})
    registered.append(name)
    dicts = get_detection_dataset_dicts_checked(name)
    path = os.path.join(str(tmp_path), "images", "0003.png")
    with pytest.raises(DatasetImageError) as info:
        first_batches(dicts, 6, 6, aspect_ratio_grouping=False)  # one epoch reads every image
    message = str(info.value)
    assert path in message and "image_id 3" in message
    assert "on_bad_image=skip" in message


def test_unreadable_images_are_skipped_when_configured(tmp_path, registered):
    name = make_coco(str(tmp_path), "reliability_skip", GOOD,
                     broken={2: "missing", 4: "corrupt"})  # fmt: skip
    registered.append(name)
    dicts = get_detection_dataset_dicts_checked(name)
    with LogCapture("ddod.data") as caplog:
        batches = first_batches(dicts, 6, 6, on_bad_image="skip", aspect_ratio_grouping=False)
    seen = [d["image_id"] for b in batches for d in b]
    assert len(seen) == 36 and not {2, 4} & set(seen)
    for file_name in ("0002.png", "0004.png"):
        assert f"Skipping unreadable training image '{tmp_path}/images/{file_name}'" in caplog.text
    # Reproducible: the replacements depend on the seed and the position only.
    again = first_batches(dicts, 6, 6, on_bad_image="skip", aspect_ratio_grouping=False)
    assert [d["image_id"] for b in again for d in b] == seen

    # When nothing can be read, skipping gives up with a clear error instead of looping.
    name = make_coco(str(tmp_path / "all"), "reliability_all_bad", {1: GOOD[1], 2: GOOD[2]},
                     broken={1: "missing", 2: "missing"})  # fmt: skip
    registered.append(name)
    with pytest.raises(DatasetImageError, match="10 images in a row were unreadable"):
        first_batches(get_detection_dataset_dicts_checked(name), 1, 1, on_bad_image="skip")


# ---------------------------------------------------------------------------------------------
# train_net.py: config keys, checkpoints, non-finite losses, mixed precision
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_net():
    return load_train_net()


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("digits"))
    name = "reliability_digits_train"
    split = dict(split="train", num_images=4, image_size=96, max_size=64)
    ensure_digits_split(root=root, **split)
    if name not in DatasetCatalog.list():
        register_digits_dataset(name, root=root, **split)
    return name


def run_train_net(train_net, output_dir, split, *opts, resume=False):
    argv = ["--config-file", QUICKSTART] + (["--resume"] if resume else []) + [
        f"train.output_dir={output_dir}",
        f"dataloader.train.dataset.names={split}",
        "dataloader.train.total_batch_size=2",
        "dataloader.test=null",
        "dataloader.evaluator=null",
        "train.log_period=1",
        "train.metrics_window=1",
        "train.seed=3",
        *opts,
    ]
    return train_net.main(train_net.build_argument_parser().parse_args(argv))


def test_train_net_names_unknown_config_keys(train_net, tmp_path):
    for override, expected in [
        ("train.max_itr=5", "Did you mean 'max_iter'"),
        ("dataloader.train.on_bad_imag=skip", "Did you mean 'on_bad_image'"),
        ("model.head.num_conv=2", "'num_conv'"),
    ]:
        with pytest.raises(ConfigOverrideError) as info:
            run_train_net(train_net, str(tmp_path), "unused", override)
        assert override in str(info.value) and expected in str(info.value)


def _other_model_checkpoint(path):
    torch.manual_seed(0)
    # one conv per tower: the quickstart model (two) has tensors the checkpoint lacks
    torch.save({"model": tiny_ddod(num_classes=4, head=dict(num_convs=1)).state_dict()}, path)


def test_checkpoint_of_another_model(train_net, tmp_path, tiny_split):
    from ddod.engine import Trainer

    cfg = train_net.setup(train_net.build_argument_parser().parse_args(
        ["--config-file", QUICKSTART, f"train.output_dir={tmp_path / 'out'}"]))  # fmt: skip
    model = Trainer.build_model(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    # A DDOD of another size: what fits is loaded, the rest is reported, readably.
    other = str(tmp_path / "other_ddod.pth")
    _other_model_checkpoint(other)
    with LogCapture("ddod.engine") as caplog:
        DetectionCheckpointer(model).load(other)
    report = caplog.text
    assert f"model tensors from '{other}'" in report
    assert "Shapes differ (kept the model's values):" in report
    line = "backbone.bottom_up.res2.0.conv1.weight: checkpoint (8, 8, 3, 3), model (16, 16, 3, 3)"
    assert line in report
    # the first 12 shown; detectron2 logs each one above
    assert re.search(r"\.\.\. and \d+ more", report)
    assert "'head.cls_score.weight' to the model due to incompatible shapes" in report
    assert "In the model, not in the checkpoint:" in report

    # Nothing in common (another kind of model): an error, and the model is untouched.
    unrelated = str(tmp_path / "unrelated.pth")
    torch.save({"model": torch.nn.Linear(3, 2).state_dict()}, unrelated)
    model.load_state_dict(before)
    with pytest.raises(CheckpointMismatchError) as info:
        DetectionCheckpointer(model).load(unrelated)
    assert "does not fit this model at all" in str(info.value)
    assert "In the checkpoint, not in the model:\n    bias\n    weight" in str(info.value)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k

    # --resume from another model's checkpoint: refused (a resume needs the exact model).
    out = tmp_path / "resume_other"
    out.mkdir()
    _other_model_checkpoint(str(out / "model_0000009.pth"))
    (out / "last_checkpoint").write_text("model_0000009.pth")
    with pytest.raises(CheckpointMismatchError, match="Cannot resume from .*model_0000009.pth"):
        run_train_net(train_net, str(out), tiny_split, "train.max_iter=12", resume=True)


def test_truncated_checkpoint_and_interrupted_save(train_net, tmp_path, tiny_split, monkeypatch):
    out = str(tmp_path / "run")
    run_train_net(train_net, out, tiny_split, "train.max_iter=1", "train.checkpointer.period=1")
    good = os.path.join(out, "model_0000000.pth")
    assert torch.load(good, weights_only=True)["iteration"] == 0

    # A job killed while torch.save writes: the previous checkpoint and the tag stay intact.
    from ddod.engine import checkpoint as checkpoint_module

    def dies_half_way(obj, f):
        f.write(b"\x80\x02partial")
        raise KeyboardInterrupt  # stands in for the process dying mid-write

    model = torch.nn.Linear(2, 2)
    checkpointer = DetectionCheckpointer(model, out)
    monkeypatch.setattr(checkpoint_module.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save("model_final")
    monkeypatch.undo()
    assert torch.load(os.path.join(out, "model_final.pth"), weights_only=True)["iteration"] == 0
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read() == "model_final.pth"
    assert not [f for f in os.listdir(out) if ".tmp-" in f]
    # What SIGKILL during a save leaves (a temporary file) is removed by the next save.
    stale = os.path.join(out, ".model_final.pth.tmp-12345")
    with open(stale, "wb") as f:
        f.write(b"partial")
    checkpointer.save("model_final")
    assert not os.path.exists(stale)

    # A truncated file (e.g. copied half-way) that --resume would use: a clear error.
    with open(good, "rb") as f:
        data = f.read()
    with open(os.path.join(out, "model_final.pth"), "wb") as f:
        f.write(data[: len(data) // 3])
    with pytest.raises(CheckpointError) as info:
        run_train_net(train_net, out, tiny_split, "train.max_iter=4", resume=True)
    assert "model_final.pth" in str(info.value) and "truncated or corrupt" in str(info.value)


def test_non_finite_loss_stops_training_naming_the_loss(train_net, tmp_path, tiny_split):
    # pixel_std = 0 turns every input into inf/NaN: a stand-in for a diverging run.
    out = str(tmp_path / "nan")
    with pytest.raises(FloatingPointError) as info:
        run_train_net(train_net, out, tiny_split, "train.max_iter=3", "model.pixel_std=[0,0,0]")
    message = str(info.value)
    assert "Loss became infinite or NaN at iteration=0" in message
    assert "loss_cls=nan" in message
    assert not os.path.exists(os.path.join(out, "model_final.pth"))


def test_bfloat16_autocast_on_cpu_keeps_assignment_and_losses_in_fp32(
    train_net, tmp_path, tiny_split, monkeypatch
):
    from ddod.modeling.heads import DDODHead
    from ddod.modeling.meta_arch.ddod import DDOD

    seen = {"head": set(), "assign": set(), "losses": set(), "autocast_in_losses": set()}
    head_forward, assign, losses = DDODHead.forward, ATSSAssigner.assign, DDOD.losses

    def spy_head(self, *args, **kwargs):
        out = head_forward(self, *args, **kwargs)
        seen["head"].add(out[0][0].dtype)
        return out

    def spy_assign(self, anchors, per_level, gt_boxes, gt_classes, **kwargs):
        seen["assign"] |= {anchors.dtype, gt_boxes.dtype}
        seen["assign"] |= {
            v.dtype for v in kwargs.values() if torch.is_tensor(v) and v.is_floating_point()
        }
        return assign(self, anchors, per_level, gt_boxes, gt_classes, **kwargs)

    def spy_losses(self, *args, **kwargs):
        out = losses(self, *args, **kwargs)
        seen["losses"] |= {v.dtype for v in out.values()}
        seen["autocast_in_losses"].add(torch.is_autocast_enabled("cpu"))
        return out

    monkeypatch.setattr(DDODHead, "forward", spy_head)
    monkeypatch.setattr(ATSSAssigner, "assign", spy_assign)
    monkeypatch.setattr(DDOD, "losses", spy_losses)
    # bf16 even where the CPU would fall back to fp32 (ddod.utils.cpu): the dtypes are the point.
    monkeypatch.setenv("DDOD_CPU_BF16", "1")
    out = str(tmp_path / "amp")
    run_train_net(train_net, out, tiny_split, "train.max_iter=3", "train.amp.enabled=True",
                  "train.device=cpu")  # fmt: skip
    assert seen["head"] == {torch.bfloat16}  # autocast was on for the network
    assert seen["autocast_in_losses"] == {True}
    assert seen["assign"] == {torch.float32}
    assert seen["losses"] == {torch.float32}
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = [json.loads(line) for line in f]
    totals = [m["total_loss"] for m in metrics if "total_loss" in m]
    assert len(totals) == 3 and all(math.isfinite(t) for t in totals)
