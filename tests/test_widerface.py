"""WIDER FACE: parsing the release's txt files, registration, and the official evaluation
protocol on hand-constructed ground truth (.mat files written with scipy, as the kit's)."""
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

import ddod  # noqa: F401
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, BoxMode, Instances

from ddod.data import (
    get_detection_dataset_dicts_checked,
    load_widerface,
    parse_widerface_bbx_gt,
    register_widerface,
    widerface_paths,
    write_widerface_eval_gt,
)
from ddod.evaluation import (
    WiderFaceEvaluator,
    load_widerface_eval_gt,
    read_widerface_predictions,
    widerface_average_precision,
)

# Three images: two faces (one heavily occluded), no face (a placeholder line of zeros), and an
# invalid face next to a 1-pixel-wide one.
BBX_GT = """\
0--Parade/0_Parade_a.jpg
2
10 20 30 40 0 1 0 0 0 0 
50 20 20 24 2 0 1 0 2 1 
0--Parade/0_Parade_empty.jpg
0
0 0 0 0 0 0 0 0 0 0 
1--Handshaking/1_Handshaking_b.jpg
2
5 5 20 20 1 0 0 1 0 0 
40 40 1 10 0 0 0 0 0 0 
"""


def write_release(root, split="train", text=BBX_GT, size=(64, 96)):
    paths = widerface_paths(str(root), split)
    os.makedirs(os.path.dirname(paths["gt_txt"]), exist_ok=True)
    with open(paths["gt_txt"], "w") as f:
        f.write(text)
    for line in text.splitlines():
        if line.endswith(".jpg"):
            path = os.path.join(paths["image_root"], line)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.new("RGB", (size[1], size[0])).save(path)
    return paths


def test_parse_keeps_attributes_and_images_without_faces(tmp_path):
    paths = write_release(tmp_path)
    entries = parse_widerface_bbx_gt(paths["gt_txt"])
    assert [name for name, _ in entries] == [
        "0--Parade/0_Parade_a.jpg",
        "0--Parade/0_Parade_empty.jpg",
        "1--Handshaking/1_Handshaking_b.jpg",
    ]
    assert entries[1][1].shape == (0, 10)
    np.testing.assert_array_equal(entries[0][1][1], [50, 20, 20, 24, 2, 0, 1, 0, 2, 1])

    dicts = load_widerface(paths["gt_txt"], paths["image_root"], min_size=2)
    a, empty, b = dicts
    assert a["image_id"] == "0--Parade/0_Parade_a" and (a["height"], a["width"]) == (64, 96)
    assert a["file_name"] == os.path.join(paths["image_root"], "0--Parade", "0_Parade_a.jpg")
    face = a["annotations"][1]
    assert face["bbox"] == [50, 20, 20, 24] and face["bbox_mode"] == BoxMode.XYWH_ABS
    assert (face["blur"], face["expression"], face["illumination"]) == (2, 0, 1)
    assert (face["invalid"], face["occlusion"], face["pose"]) == (0, 2, 1)
    assert [f["iscrowd"] for f in a["annotations"]] == [0, 0]
    assert empty["annotations"] == []
    # the invalid face and the 1-px-wide face are kept, flagged crowd (not trained on)
    assert [(f["invalid"], f["iscrowd"]) for f in b["annotations"]] == [(1, 1), (0, 1)]
    assert [f["iscrowd"] for f in load_widerface(paths["gt_txt"], paths["image_root"],
                                                 min_size=1)[2]["annotations"]] == [1, 0]


def test_training_dicts_drop_images_without_trainable_faces(tmp_path):
    write_release(tmp_path)
    register_widerface("test_widerface_parse_train", str(tmp_path), "train")
    register_widerface("test_widerface_parse_train", str(tmp_path), "train")  # same: no-op
    meta = MetadataCatalog.get("test_widerface_parse_train")
    assert meta.thing_classes == ["face"] and meta.evaluator_type == "widerface"
    assert len(DatasetCatalog.get("test_widerface_parse_train")) == 3
    kept = get_detection_dataset_dicts_checked("test_widerface_parse_train")
    # the image without faces and the one whose faces are all crowd are not trained on
    assert [d["image_id"] for d in kept] == ["0--Parade/0_Parade_a"]
    with pytest.raises(ValueError, match="already registered"):
        register_widerface("test_widerface_parse_train", str(tmp_path / "other"), "train")


def test_missing_and_malformed_files_are_named(tmp_path):
    paths = widerface_paths(str(tmp_path), "val")
    with pytest.raises(FileNotFoundError, match="wider_face_val_bbx_gt.txt"):
        parse_widerface_bbx_gt(paths["gt_txt"])
    with pytest.raises(FileNotFoundError, match="WIDER_val"):
        load_widerface(paths["gt_txt"], paths["image_root"])
    paths = write_release(tmp_path, "val", BBX_GT.replace("50 20 20 24", "50 20 x 24"))
    with pytest.raises(ValueError, match=r"line 5: non-numeric"):
        parse_widerface_bbx_gt(paths["gt_txt"])
    os.remove(os.path.join(paths["image_root"], "0--Parade", "0_Parade_a.jpg"))
    with open(paths["gt_txt"], "w") as f:
        f.write(BBX_GT)
    with pytest.raises(FileNotFoundError, match="0_Parade_a.jpg"):
        load_widerface(paths["gt_txt"], paths["image_root"])
    register_widerface("test_widerface_missing_val", str(tmp_path / "nowhere"), "val")
    with pytest.raises(FileNotFoundError, match=r"(?s)WIDER_val.*expected there.*ground_truth"):
        get_detection_dataset_dicts_checked("test_widerface_missing_val")
    register_widerface("test_widerface_missing_mat", str(tmp_path), "val")
    with pytest.raises(FileNotFoundError, match="wider_easy_val.mat"):
        WiderFaceEvaluator("test_widerface_missing_mat")


# ------------------------------------------------------------------------------------------
# the evaluation protocol
# ------------------------------------------------------------------------------------------
# One image, three faces (x y w h): face 0 is in every subset, face 1 in medium and hard, face 2
# in hard only; a second image with one easy face.
FACES = {
    "0--Parade/img0": np.array([[0, 0, 20, 20], [40, 0, 20, 20], [80, 0, 20, 20]], float),
    "1--Handshaking/img1": np.array([[10, 10, 30, 30]], float),
}
SUBSETS = {
    "easy": {"0--Parade/img0": [0], "1--Handshaking/img1": [0]},
    "medium": {"0--Parade/img0": [0, 1], "1--Handshaking/img1": [0]},
    "hard": {"0--Parade/img0": [0, 1, 2], "1--Handshaking/img1": [0]},
}


@pytest.fixture(scope="module")
def gt(tmp_path_factory):
    gt_dir = str(tmp_path_factory.mktemp("ground_truth"))
    write_widerface_eval_gt(gt_dir, FACES, SUBSETS)
    return load_widerface_eval_gt(gt_dir)


def det(key, face, score, shift=0.0):
    x, y, w, h = FACES[key][face]
    return [x + shift, y, w, h, score]


def ap(gt, predictions):
    predictions = {k: np.asarray(v, float).reshape(-1, 5) for k, v in predictions.items()}
    return widerface_average_precision(predictions, *gt)


def test_ground_truth_round_trip_through_mat_files(gt):
    boxes, subsets = gt
    assert list(boxes) == list(FACES)
    for key in FACES:
        np.testing.assert_array_equal(boxes[key], FACES[key])
        for subset in SUBSETS:
            assert subsets[subset][key].tolist() == SUBSETS[subset][key]


def test_perfect_detections_give_ap_one(gt):
    perfect = {
        "0--Parade/img0": [det("0--Parade/img0", i, s) for i, s in enumerate((0.9, 0.8, 0.7))],
        "1--Handshaking/img1": [det("1--Handshaking/img1", 0, 0.6)],
    }
    assert ap(gt, perfect) == {"easy": 1.0, "medium": 1.0, "hard": 1.0}


def test_subsets_differ_as_designed(gt):
    # faces 0 and 2 of img0 detected, face 1 missed; img1 detected
    preds = {
        "0--Parade/img0": [det("0--Parade/img0", 0, 0.9), det("0--Parade/img0", 2, 0.8)],
        "1--Handshaking/img1": [det("1--Handshaking/img1", 0, 0.7)],
    }
    result = ap(gt, preds)
    # easy: face 2 is ignored, both easy faces found -> 1
    assert result["easy"] == pytest.approx(1.0)
    # medium: face 1 missed (2 of 3 found), the detection on face 2 ignored: recall 2/3 at
    # precision 1 -> 2/3
    assert result["medium"] == pytest.approx(2 / 3)
    # hard: 3 of 4 found at precision 1 -> 3/4
    assert result["hard"] == pytest.approx(3 / 4)


def test_a_detection_on_an_ignored_face_changes_nothing(gt):
    base = {
        "0--Parade/img0": [det("0--Parade/img0", 0, 0.5)],
        "1--Handshaking/img1": [det("1--Handshaking/img1", 0, 0.4)],
    }
    with_ignored = {
        # the highest score of the set, on face 2 (hard only): for easy and medium it is ignored
        "0--Parade/img0": [det("0--Parade/img0", 2, 0.9), det("0--Parade/img0", 0, 0.5)],
        "1--Handshaking/img1": [det("1--Handshaking/img1", 0, 0.4)],
    }
    a, b = ap(gt, base), ap(gt, with_ignored)
    assert b["easy"] == a["easy"] == pytest.approx(1.0)
    assert b["medium"] == a["medium"] == pytest.approx(2 / 3)
    # in hard it is a true positive
    assert a["hard"] == pytest.approx(2 / 4) and b["hard"] == pytest.approx(3 / 4)


def test_a_duplicate_is_a_false_positive(gt):
    key = "1--Handshaking/img1"
    preds = {
        # the face of img1 first (normalised score 1), then img0's face 0 (score 0)
        key: [det(key, 0, 0.7, shift=2.0)],
        "0--Parade/img0": [det("0--Parade/img0", 0, 0.1)],
    }
    assert ap(gt, preds)["easy"] == pytest.approx(1.0)
    # a second detection of img1's face (IoU 0.88 with it), normalised score 0.5: for
    # thresholds in (0, 0.5] it is a proposal that recalls nothing: recall 1/2 at precision
    # 1/2, then recall 1 at 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3
    preds[key].append(det(key, 0, 0.4))
    assert ap(gt, preds)["easy"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_scores_are_normalised_over_the_set(gt):
    key = "1--Handshaking/img1"
    # raw scores below every threshold but 0: without normalisation the true positive and the
    # false positive would enter the curve together (AP 1/2 on this image's face)
    preds = {"0--Parade/img0": [], key: [det(key, 0, 0.0009), [200, 200, 10, 10, 0.0001]]}
    result = ap(gt, preds)
    # normalised to 1 and 0, the true positive comes first: precision 1 at recall 1/2 (easy has
    # two faces, one detected)
    assert result["easy"] == pytest.approx(0.5)
    # any increasing affine map of the scores gives the same APs
    scaled = {k: [d[:4] + [d[4] * 1000 + 3] for d in v] for k, v in preds.items()}
    assert ap(gt, scaled) == result


def test_evaluator_writes_official_txt_files_and_reports_percent(tmp_path, gt):
    gt_dir = str(tmp_path / "gt")
    write_widerface_eval_gt(gt_dir, FACES, SUBSETS)
    evaluator = WiderFaceEvaluator(
        "unused_name", output_dir=str(tmp_path), gt_mat_dir=gt_dir, distributed=False
    )
    evaluator.reset()
    for key, faces in FACES.items():
        instances = Instances((120, 120))
        xyxy = faces.copy()
        xyxy[:, 2:] += xyxy[:, :2]
        instances.pred_boxes = Boxes(torch.tensor(xyxy, dtype=torch.float32))
        instances.scores = torch.linspace(0.9, 0.5, len(faces))
        instances.pred_classes = torch.zeros(len(faces), dtype=torch.int64)
        evaluator.process([{"image_id": key}], [{"instances": instances}])
    results = evaluator.evaluate()
    assert results == {"widerface": {"easy": 100.0, "medium": 100.0, "hard": 100.0}}
    txt = tmp_path / "widerface_txt" / "0--Parade" / "img0.txt"
    lines = txt.read_text().splitlines()
    assert lines[:3] == ["img0", "3", "0.0 0.0 20.0 20.0 0.900000"]
    back = read_widerface_predictions(str(tmp_path / "widerface_txt"))
    np.testing.assert_allclose(back["0--Parade/img0"][:, :4], FACES["0--Parade/img0"])
    assert widerface_average_precision(back, *gt) == {"easy": 1.0, "medium": 1.0, "hard": 1.0}


def test_unknown_image_ids_are_reported(tmp_path):
    gt_dir = str(tmp_path / "gt")
    write_widerface_eval_gt(gt_dir, FACES, SUBSETS)
    evaluator = WiderFaceEvaluator("unused_name", gt_mat_dir=gt_dir, distributed=False)
    instances = Instances((10, 10))
    instances.pred_boxes = Boxes(torch.zeros(0, 4))
    instances.scores = torch.zeros(0)
    evaluator.process([{"image_id": 17}], [{"instances": instances}])
    with pytest.raises(KeyError, match="<event>/<name>"):
        evaluator.evaluate()
    assert math.isnan(
        widerface_average_precision({}, {"e/a": np.zeros((0, 4))}, {"easy": {}})["easy"]
    )
