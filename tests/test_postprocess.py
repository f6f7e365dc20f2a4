"""Post-processing parts (modeling/postprocess.py): Soft-NMS against hand-computed decays and a
plain Python reference, box voting by hand, and DDOD's default staying class-aware NMS."""
import math

import pytest
import torch

from ddod.modeling import DDOD, BoxVoting, ClassAwareNMS, SoftNMS, build_postprocess
from ddod.modeling.postprocess import soft_nms

from .common import tiny_ddod

# Three boxes of class 0 and one of class 1. By hand:
#   IoU(A, B) = 80 / 100 = 0.8; IoU(A, C) = 50 / 150 = 1/3; IoU(B, C) = 40 / 140 = 2/7;
#   D is A's box in another class (never interacts).
BOXES = torch.tensor(
    [[0, 0, 10, 10], [0, 0, 10, 8], [5, 0, 15, 10], [0, 0, 10, 10]], dtype=torch.float32
)
SCORES = torch.tensor([0.9, 0.8, 0.7, 0.5])
CLASSES = torch.tensor([0, 0, 0, 1])


def test_soft_nms_linear_hand_computed():
    keep, scores = soft_nms(BOXES, SCORES, CLASSES, method="linear", iou_thresh=0.3)
    # round 1 keeps A (0.9) and D (0.5); B: 0.8 * (1 - 0.8) = 0.16, C: 0.7 * (1 - 1/3).
    # round 2 keeps C (0.4667); IoU(B, C) = 2/7 < 0.3: B not decayed. Round 3 keeps B.
    assert keep.tolist() == [0, 3, 2, 1]
    expected = [0.9, 0.5, 0.7 * (2 / 3), 0.8 * 0.2]
    assert scores.tolist() == pytest.approx(expected, abs=1e-6)


def test_soft_nms_gaussian_hand_computed():
    keep, scores = soft_nms(BOXES, SCORES, CLASSES, method="gaussian", sigma=0.5)
    b = 0.8 * math.exp(-0.8**2 / 0.5)  # 0.2224: decayed by A
    c = 0.7 * math.exp(-(1 / 3) ** 2 / 0.5)  # 0.5605: decayed by A
    b = b * math.exp(-(2 / 7) ** 2 / 0.5)  # 0.1889: decayed by C (Gaussian decays every box)
    assert keep.tolist() == [0, 2, 3, 1]
    assert scores.tolist() == pytest.approx([0.9, c, 0.5, b], abs=1e-6)


def test_soft_nms_score_thresh_drops_decayed_boxes():
    # B decays to 0.16 (linear): dropped at a threshold of 0.2, and so is nothing else
    keep, scores = soft_nms(
        BOXES, SCORES, CLASSES, method="linear", iou_thresh=0.3, score_thresh=0.2
    )
    assert keep.tolist() == [0, 3, 2]


def _reference_soft_nms(boxes, scores, classes, method, sigma, iou_thresh, score_thresh):
    """Plain Python Soft-NMS, one class and one box at a time (Bodla et al., Algorithm 1)."""
    result = []
    for c in sorted(set(classes.tolist())):
        idx = [i for i in range(len(boxes)) if classes[i] == c]
        cur = {i: float(scores[i]) for i in idx if scores[i] > score_thresh}
        while cur:
            best = max(cur, key=lambda i: (cur[i], -i))
            result.append((best, cur.pop(best)))
            for i in list(cur):
                bx, by = boxes[best].tolist(), boxes[i].tolist()
                iw = max(0.0, min(bx[2], by[2]) - max(bx[0], by[0]))
                ih = max(0.0, min(bx[3], by[3]) - max(bx[1], by[1]))
                inter = iw * ih
                area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
                iou = inter / (area(bx) + area(by) - inter)
                if method == "linear":
                    decay = 1 - iou if iou > iou_thresh else 1.0
                else:
                    decay = math.exp(-iou * iou / sigma)
                cur[i] *= decay
                if cur[i] <= score_thresh:
                    del cur[i]
    result.sort(key=lambda r: -r[1])
    return result


@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_soft_nms_matches_python_reference_on_random_boxes(method):
    g = torch.Generator().manual_seed(0)
    n = 300
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 40 + 2
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    classes = torch.randint(0, 4, (n,), generator=g)
    kwargs = dict(method=method, sigma=0.5, iou_thresh=0.3, score_thresh=0.05)
    keep, new_scores = soft_nms(boxes, scores, classes, **kwargs)
    ref = _reference_soft_nms(boxes, scores, classes, **kwargs)
    assert len(keep) == len(ref) > 50
    assert new_scores.tolist() == pytest.approx([s for _, s in ref], abs=1e-9)
    assert keep.tolist() == [i for i, _ in ref]
    # stopping the rounds once the best max_keep are known gives the same head of the list
    for max_keep in (1, 30, 1000):
        head, head_scores = soft_nms(boxes, scores, classes, max_keep=max_keep, **kwargs)
        assert head.tolist() == keep[:max_keep].tolist()
        assert torch.equal(head_scores, new_scores[:max_keep])


def test_soft_nms_empty_and_part_max_keep():
    keep, scores = soft_nms(BOXES[:0], SCORES[:0], CLASSES[:0])
    assert keep.shape == (0,) and scores.shape == (0,)
    boxes, scores, classes = SoftNMS("linear")(BOXES, SCORES, CLASSES, 2)
    assert scores.tolist() == pytest.approx([0.9, 0.5])
    assert classes.tolist() == [0, 1]


def test_box_voting_hand_computed():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [40, 40, 50, 50], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.3, 0.6, 0.4])
    classes = torch.tensor([0, 0, 0, 1])
    # IoU(box 0, box 1) = 90 / 110 = 0.82: suppressed by NMS at 0.6, votes at 0.8; box 3 is of
    # another class and does not vote.
    out_boxes, out_scores, out_classes = BoxVoting(nms_thresh=0.6, vote_thresh=0.8)(
        boxes, scores, classes, 10
    )
    assert out_scores.tolist() == pytest.approx([0.9, 0.6, 0.4])
    assert out_classes.tolist() == [0, 0, 1]
    voted = (0.9 * boxes[0] + 0.3 * boxes[1]) / 1.2  # (0.25, 0, 10.25, 10)
    assert torch.allclose(out_boxes[0], voted)
    assert torch.equal(out_boxes[1:], boxes[[2, 3]])


def test_class_aware_nms_is_ddod_default_and_parts_add_no_checkpoint_keys():
    model = tiny_ddod(test_nms_thresh=0.45)
    assert isinstance(model.postprocess, ClassAwareNMS)
    assert model.postprocess.iou_thresh == 0.45
    soft = tiny_ddod(postprocess=SoftNMS("gaussian"))
    assert list(soft.state_dict()) == list(model.state_dict())


def test_ddod_inference_applies_its_postprocess_to_its_candidates():
    torch.manual_seed(0)
    model = tiny_ddod(postprocess=SoftNMS("linear"), test_score_thresh=0.0).eval()
    image = torch.rand(3, 128, 160) * 255
    with torch.no_grad():
        out = model([{"image": image}])[0]["instances"]
        images = model.preprocess_image([{"image": image}])
        features = model.backbone(images.tensor)
        features = [features[f] for f in model.head_in_features]
        boxes, scores, classes = model.candidates(
            features, model.head(features), images.image_sizes
        )[0]
    keep, expected = soft_nms(boxes, scores, classes, method="linear")
    keep, expected = keep[:100], expected[:100]
    assert len(out) == len(keep) > 0
    assert torch.allclose(out.scores, expected)
    assert torch.allclose(out.pred_boxes.tensor, boxes[keep])


def test_build_postprocess_by_name_and_bad_names():
    assert isinstance(build_postprocess("nms"), ClassAwareNMS)
    assert build_postprocess("soft_nms_gaussian", sigma=0.3).sigma == 0.3
    assert build_postprocess("soft_nms_linear").method == "linear"
    assert isinstance(build_postprocess("voting"), BoxVoting)
    with pytest.raises(ValueError, match="soft_nms_gaussian"):
        build_postprocess("softnms")
    with pytest.raises(ValueError, match="linear"):
        SoftNMS("cosine")
    assert DDOD  # the meta-architecture takes the parts as ``postprocess``


def test_soft_nms_early_stop_in_one_crowded_class():
    g = torch.Generator().manual_seed(3)
    n = 400
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 20
    boxes = torch.cat([xy, xy + 30], dim=1)  # all overlap: many decays, many rounds
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    classes = torch.zeros(n, dtype=torch.int64)
    full, full_scores = soft_nms(boxes, scores, classes, method="gaussian", score_thresh=0.0)
    head, head_scores = soft_nms(
        boxes, scores, classes, method="gaussian", score_thresh=0.0, max_keep=20
    )
    assert len(full) == n and head.tolist() == full[:20].tolist()
    assert torch.equal(head_scores, full_scores[:20])
