"""Tests for ddod.data: the digits dataset, checked dataset loading, and the data configs."""

import json
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ddod  # noqa: F401  (must come before detectron2 submodules)
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ddod.data import (
    DIGITS_CLASSES,
    default_digits_root,
    ensure_digits_split,
    generate_digits_split,
    get_detection_dataset_dicts_checked,
    register_coco_dataset,
    register_digits_dataset,
)
from ddod.data import digits as digits_module

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "common" / "data"
NUM_VAL = 30


def _unique(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _unregister(name):
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)
    digits_module._REGISTERED.pop(name, None)


@pytest.fixture
def registered_names():
    """Dataset names registered by a test; unregistered afterwards."""
    names = []
    yield names
    for name in names:
        _unregister(name)


@pytest.fixture(scope="module")
def val_split(tmp_path_factory):
    """A small val split: (json_file, image_root, parsed json)."""
    root = tmp_path_factory.mktemp("digits")
    json_file, image_root = ensure_digits_split(root=root, split="val", num_images=NUM_VAL)
    with open(json_file) as f:
        return json_file, image_root, json.load(f)


def test_generation_is_deterministic(tmp_path):
    files = [
        generate_digits_split(output_dir=tmp_path / name, split="train", num_images=4)
        for name in ("a", "b")
    ]
    assert Path(files[0]).read_bytes() == Path(files[1]).read_bytes()
    for image in ("000001.png", "000004.png"):
        assert (tmp_path / "a" / "images" / image).read_bytes() == (
            tmp_path / "b" / "images" / image
        ).read_bytes()
    # A different seed gives different data.
    other = generate_digits_split(output_dir=tmp_path / "c", split="train", num_images=4, seed=1)
    assert (
        json.loads(Path(other).read_text())["annotations"]
        != json.loads(Path(files[0]).read_text())["annotations"]
    )


def test_boxes_are_valid(val_split):
    json_file, image_root, coco = val_split
    assert len(coco["images"]) == NUM_VAL
    sizes = {image["id"]: (image["width"], image["height"]) for image in coco["images"]}
    images_with_objects = {ann["image_id"] for ann in coco["annotations"]}
    assert images_with_objects == set(sizes)
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        width, height = sizes[ann["image_id"]]
        assert w >= 3 and h >= 3, ann
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height, ann
        assert ann["area"] == w * h and ann["iscrowd"] == 0
    for image in coco["images"][:3]:
        with Image.open(os.path.join(image_root, image["file_name"])) as im:
            assert im.size == (image["width"], image["height"]) and im.mode == "RGB"


def test_boxes_are_tight_around_ink(val_split):
    _, image_root, coco = val_split
    checked = 0
    for image in coco["images"][:5]:
        path = os.path.join(image_root, image["file_name"])
        brightness = np.asarray(Image.open(path), dtype=np.int32).max(axis=-1)
        background = np.median(brightness)
        boxes = [ann["bbox"] for ann in coco["annotations"] if ann["image_id"] == image["id"]]
        for i, (x, y, w, h) in enumerate(boxes):
            others = [b for j, b in enumerate(boxes) if j != i]
            if any(
                x < ox + ow + 2 and ox < x + w + 2 and y < oy + oh + 2 and oy < y + h + 2
                for ox, oy, ow, oh in others
            ):
                continue  # another digit's ink may touch this box
            box = brightness[y : y + h, x : x + w]
            # Bright ink (the digit) touches all four sides of its box.
            for side in (box[0], box[-1], box[:, 0], box[:, -1]):
                assert side.max() > background + 20, (image["file_name"], (x, y, w, h))
            checked += 1
    assert checked >= 5


def test_classes_and_sizes_are_spread(val_split):
    _, _, coco = val_split
    assert [c["id"] for c in coco["categories"]] == list(range(1, 11))
    assert [c["name"] for c in coco["categories"]] == list(DIGITS_CLASSES)
    assert {ann["category_id"] for ann in coco["annotations"]} == set(range(1, 11))
    longer_side = np.array([max(ann["bbox"][2:]) for ann in coco["annotations"]])
    assert (longer_side < 32).sum() >= 5
    assert (longer_side > 128).sum() >= 5
    assert longer_side.max() <= 192


def test_train_and_val_use_different_digits():
    train = digits_module._pool_indices("train", 1797)
    val = digits_module._pool_indices("val", 1797)
    assert len(train) + len(val) == 1797
    assert not set(train.tolist()) & set(val.tolist())


def test_json_loads_with_pycocotools(val_split):
    from pycocotools.coco import COCO

    api = COCO(val_split[0])
    assert len(api.getImgIds()) == NUM_VAL
    assert api.getCatIds() == list(range(1, 11))
    assert len(api.getAnnIds()) == len(val_split[2]["annotations"])


def test_registered_name_generates_lazily(tmp_path, registered_names):
    name = _unique("digits_pytest_val")
    register_digits_dataset(name, split="val", root=tmp_path, num_images=5)
    registered_names.append(name)
    metadata = MetadataCatalog.get(name)
    assert metadata.thing_classes == list(DIGITS_CLASSES)
    assert metadata.evaluator_type == "coco"
    assert not os.path.exists(metadata.json_file)  # nothing generated before first use

    dicts = DatasetCatalog.get(name)
    assert os.path.isfile(metadata.json_file) and os.path.isdir(metadata.image_root)
    assert len(dicts) == 5
    annotation = dicts[0]["annotations"][0]
    assert annotation["bbox_mode"] == BoxMode.XYWH_ABS
    assert 0 <= annotation["category_id"] < 10
    assert os.path.isfile(dicts[0]["file_name"])
    assert MetadataCatalog.get(name).thing_classes == list(DIGITS_CLASSES)


def test_builtin_names_are_registered():
    for name, split in (("digits_det_train", "train"), ("digits_det_val", "val")):
        assert name in DatasetCatalog.list()
        metadata = MetadataCatalog.get(name)
        assert metadata.thing_classes == list(DIGITS_CLASSES)
        assert metadata.evaluator_type == "coco"
        assert metadata.json_file == os.path.join(
            digits_module._REGISTERED[name][0], split, "annotations.json"
        )
    assert digits_module._REGISTERED["digits_det_train"][2]["num_images"] == 600
    assert digits_module._REGISTERED["digits_det_val"][2]["num_images"] == 100


def test_default_root(monkeypatch):
    monkeypatch.delenv("DDOD_DATASETS", raising=False)
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    assert default_digits_root() == os.path.join("datasets", "ddod_digits")
    monkeypatch.setenv("DETECTRON2_DATASETS", "/data/d2")
    assert default_digits_root() == os.path.join("/data/d2", "ddod_digits")
    monkeypatch.setenv("DDOD_DATASETS", "/data/digits")
    assert default_digits_root() == "/data/digits"


def test_register_digits_is_idempotent(tmp_path, registered_names):
    name = _unique("digits_pytest")
    register_digits_dataset(name, split="val", root=tmp_path, num_images=3)
    registered_names.append(name)
    register_digits_dataset(name, split="val", root=tmp_path, num_images=3)
    with pytest.raises(ValueError, match="already registered"):
        register_digits_dataset(name, split="val", root=tmp_path, num_images=4)


def test_stale_temp_dir_is_not_trusted(tmp_path):
    # What a killed generation leaves behind: a temp dir with a partial split.
    stale = tmp_path / ".tmp-val-killed"
    (stale / "images").mkdir(parents=True)
    (stale / "annotations.json").write_text('{"images": [')
    old = 1_000_000_000
    os.utime(stale, (old, old))

    json_file, image_root = ensure_digits_split(root=tmp_path, split="val", num_images=3)
    assert Path(json_file).parent == tmp_path / "val"
    assert len(json.loads(Path(json_file).read_text())["images"]) == 3
    assert len(os.listdir(image_root)) == 3
    assert not stale.exists()  # old leftovers are cleaned up
    assert sorted(os.listdir(tmp_path)) == ["val"]


def test_incomplete_or_outdated_split_is_regenerated(tmp_path):
    # A split directory without its generation.json (e.g. copied half-way) is not trusted.
    (tmp_path / "val" / "images").mkdir(parents=True)
    (tmp_path / "val" / "annotations.json").write_text("{}")
    json_file, _ = ensure_digits_split(root=tmp_path, split="val", num_images=2)
    assert len(json.loads(Path(json_file).read_text())["images"]) == 2

    # Other parameters: regenerated; the same parameters: reused as is.
    json_file, _ = ensure_digits_split(root=tmp_path, split="val", num_images=3)
    assert len(json.loads(Path(json_file).read_text())["images"]) == 3
    mtime = os.path.getmtime(json_file)
    ensure_digits_split(root=tmp_path, split="val", num_images=3)
    assert os.path.getmtime(json_file) == mtime


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    original = digits_module._generate

    def interrupted(output_dir, params):
        os.makedirs(os.path.join(output_dir, "images"))
        Path(output_dir, "annotations.json").write_text("{")
        raise KeyboardInterrupt

    monkeypatch.setattr(digits_module, "_generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_digits_split(root=tmp_path, split="val", num_images=2)
    assert os.listdir(tmp_path) == []

    monkeypatch.setattr(digits_module, "_generate", original)
    json_file, _ = ensure_digits_split(root=tmp_path, split="val", num_images=2)
    assert len(json.loads(Path(json_file).read_text())["images"]) == 2


def test_register_coco_dataset(tmp_path, registered_names):
    name = _unique("pytest_coco")
    register_coco_dataset(name, tmp_path / "a.json", tmp_path, {"thing_classes": ["x"]})
    registered_names.append(name)
    register_coco_dataset(name, tmp_path / "a.json", tmp_path, {"thing_classes": ["x"]})
    with pytest.raises(ValueError, match="json_file"):
        register_coco_dataset(name, tmp_path / "b.json", tmp_path, {"thing_classes": ["x"]})


def test_checked_loader_names_missing_path(tmp_path, registered_names):
    name = _unique("pytest_missing")
    missing = tmp_path / "nowhere" / "instances.json"
    register_coco_dataset(name, missing, tmp_path)
    registered_names.append(name)
    with pytest.raises(FileNotFoundError) as info:
        get_detection_dataset_dicts_checked(name)
    assert name in str(info.value) and str(missing) in str(info.value)


def test_checked_loader_explains_builtin_layout():
    if os.path.exists(MetadataCatalog.get("coco_2017_train").json_file):
        pytest.skip("COCO is installed here")
    with pytest.raises(FileNotFoundError) as info:
        get_detection_dataset_dicts_checked(["coco_2017_train"])
    message = str(info.value)
    assert "coco_2017_train" in message and "DETECTRON2_DATASETS" in message
    assert "coco/annotations/instances_train2017.json" in message
    assert "coco/train2017/" in message


def test_checked_loader_suggests_close_names():
    with pytest.raises(KeyError) as info:
        get_detection_dataset_dicts_checked("digits_det_trian")
    assert "digits_det_train" in str(info.value)


def test_checked_loader_generates_digits(tmp_path, registered_names):
    name = _unique("digits_pytest_train")
    register_digits_dataset(name, split="train", root=tmp_path, num_images=4)
    registered_names.append(name)
    dicts = get_detection_dataset_dicts_checked([name], filter_empty=True)
    assert len(dicts) == 4


def test_digits_config_builds_loaders(tmp_path, registered_names):
    names = {split: _unique(f"digits_pytest_{split}") for split in ("train", "val")}
    for split, name in names.items():
        register_digits_dataset(name, split=split, root=tmp_path, num_images=3)
        registered_names.append(name)
    cfg = LazyConfig.load(str(CONFIG_DIR / "digits.py"))
    assert cfg.dataloader.train.dataset.names == "digits_det_train"
    assert cfg.dataloader.train.num_workers == 0
    cfg.dataloader.train.dataset.names = names["train"]
    cfg.dataloader.test.dataset.names = names["val"]
    cfg.dataloader.train.total_batch_size = 2

    batch = next(iter(instantiate(cfg.dataloader.train)))
    assert len(batch) == 2
    assert batch[0]["image"].shape == (3, 256, 256)
    assert len(batch[0]["instances"].gt_boxes) > 0
    test_batch = next(iter(instantiate(cfg.dataloader.test)))
    assert test_batch[0]["image"].shape == (3, 256, 256)
    evaluator = instantiate(cfg.dataloader.evaluator)
    assert evaluator._metadata.name == names["val"]


@pytest.mark.parametrize("config", ["coco.py", "digits.py"])
def test_data_configs_round_trip(tmp_path, config):
    cfg = LazyConfig.load(str(CONFIG_DIR / config))
    LazyConfig.save(cfg, str(tmp_path / "config.yaml"))
    reloaded = LazyConfig.load(str(tmp_path / "config.yaml"))
    assert reloaded.dataloader.test.dataset.names == cfg.dataloader.test.dataset.names
    assert reloaded.dataloader.evaluator.dataset_name == cfg.dataloader.test.dataset.names


def test_coco_config():
    cfg = LazyConfig.load(str(CONFIG_DIR / "coco.py"))
    assert cfg.dataloader.train.dataset.names == "coco_2017_train"
    assert cfg.dataloader.test.dataset.filter_empty is False
    assert cfg.dataloader.train.mapper.use_instance_mask is False
    resize = cfg.dataloader.train.mapper.augmentations[0]
    assert resize.short_edge_length == 800 and resize.max_size == 1333
    assert cfg.dataloader.test.mapper.image_format == "BGR"
    if not os.path.exists(MetadataCatalog.get("coco_2017_val").json_file):
        with pytest.raises(FileNotFoundError, match="instances_val2017.json"):
            instantiate(cfg.dataloader.test.dataset)


def test_drop_invalid_boxes_modes_and_copies():
    from ddod.data import drop_invalid_boxes

    def ann(bbox, mode=BoxMode.XYWH_ABS, **extra):
        return dict(bbox=bbox, bbox_mode=mode, category_id=0, **extra)

    record = {
        "file_name": "a.png",
        "width": 100,
        "height": 50,
        "annotations": [
            ann([10, 10, 20, 20]),  # kept
            ann([10, 10, 30, 5], BoxMode.XYXY_ABS),  # inverted in XYXY: dropped
            ann([90, 40, 30, 30]),  # partly outside: kept (the mapper clips it)
            ann([100, 0, 5, 5]),  # starts at the right border: entirely outside
            ann([0.1, 0.1, 0.2, 0.2], BoxMode.XYXY_REL),  # relative: not checked
            ann([5, 5, 0, 0], iscrowd=1),  # a degenerate crowd box is dropped too
            ann([1, 2, 3]),  # malformed
        ],
    }
    untouched = {"file_name": "b.png", "annotations": [ann([1, 1, 2, 2])]}
    out = drop_invalid_boxes([record, untouched], "unit")
    assert [a["bbox"] for a in out[0]["annotations"]] == [
        [10, 10, 20, 20],
        [90, 40, 30, 30],
        [0.1, 0.1, 0.2, 0.2],
    ]
    assert len(record["annotations"]) == 7  # the input is not modified
    assert out[1] is untouched
