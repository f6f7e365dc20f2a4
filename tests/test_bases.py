"""The paper's three bases (RetinaNet, FCOS*, ATSS) as configurations of the DDOD parts: their
assigners and box coder on hand-checked cases, and each base training on the built-in digits
dataset and returning boxes in image space."""
import math

import pytest
import torch

import ddod  # noqa: F401
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.modeling.box_regression import Box2BoxTransformLinear
from detectron2.utils.events import EventStorage

from ddod.data import register_digits_dataset
from ddod.modeling import Box2BoxTransformLTRB, FCOSPointAssigner, MaxIoUAssigner
from ddod.modeling.assigners import BACKGROUND, IGNORE
from ddod.modeling.losses import centerness_target, smooth_l1_loss_per_box

from .common import load_tool, make_input, paper_config, small_yacs_cfg

# ------------------------------------------------------------------------------------------------
# RetinaNet's MaxIoUAssigner
# ------------------------------------------------------------------------------------------------
ANCHORS = torch.tensor(
    [
        [0, 0, 10, 10],      # 0: IoU 1.0 with GT0                -> GT0
        [5, 0, 15, 10],      # 1: IoU 50/150 = 0.333 with GT0     -> background
        [0, 0, 10, 22],      # 2: IoU 100/220 = 0.4545 with GT0   -> ignored at (0.4, 0.5)
        [20, 20, 30, 30],    # 3: IoU 100/120 = 0.833 with GT1    -> GT1
        [55, 50, 65, 60],    # 4: IoU 50/150 = 0.333 with GT2, its best anchor -> low-quality GT2
        [100, 100, 110, 110],  # 5: no overlap                    -> background
        [0, 0, 10, 10],      # 6: a copy of anchor 0, but padding (invalid) -> ignored
    ],
    dtype=torch.float32,
)  # fmt: skip
GTS = torch.tensor(
    [[0, 0, 10, 10], [20, 20, 32, 30], [50, 50, 60, 60], [200, 200, 210, 210.0]]
)  # GT3 overlaps no anchor and claims nothing
GT_CLASSES = torch.tensor([0, 1, 2, 3])
VALID = torch.tensor([True] * 6 + [False])


def test_max_iou_retinanet_thresholds_hand_checked():
    r = MaxIoUAssigner(pos_iou_thresh=0.5, neg_iou_thresh=0.4)(
        ANCHORS, [7], GTS, GT_CLASSES, valid_mask=VALID
    )
    assert r.matched_gt.tolist() == [0, BACKGROUND, IGNORE, 1, 2, BACKGROUND, IGNORE]
    assert r.quality[[0, 3, 4]].tolist() == pytest.approx([1.0, 100 / 120, 1 / 3])


def test_max_iou_lower_threshold_takes_the_ignored_anchor():
    # The regression assigner of Table 1's (0.5, 0.4) row: IoU >= 0.4 is positive.
    r = MaxIoUAssigner(pos_iou_thresh=0.4, neg_iou_thresh=0.4)(
        ANCHORS, [7], GTS, GT_CLASSES, valid_mask=VALID
    )
    assert r.matched_gt.tolist() == [0, BACKGROUND, 0, 1, 2, BACKGROUND, IGNORE]


def test_max_iou_without_low_quality_matches_and_without_gt():
    r = MaxIoUAssigner(allow_low_quality_matches=False)(ANCHORS, [7], GTS, GT_CLASSES)
    assert r.matched_gt.tolist() == [0, BACKGROUND, IGNORE, 1, BACKGROUND, BACKGROUND, 0]
    empty = MaxIoUAssigner()(ANCHORS, [7], torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert empty.matched_gt.tolist() == [BACKGROUND] * 7


def test_max_iou_thresholds_are_validated():
    with pytest.raises(ValueError, match="neg_iou_thresh <= pos_iou_thresh"):
        MaxIoUAssigner(pos_iou_thresh=0.4, neg_iou_thresh=0.5)


# ------------------------------------------------------------------------------------------------
# FCOS*'s point assigner
# ------------------------------------------------------------------------------------------------
# Two levels: stride 8 points p0..p3 at y = 4, x = 4, 12, 20, 28; stride 16 points q0, q1 at
# y = 8, x = 8, 24. Each point is a stride x stride box around it.
POINTS = torch.tensor(
    [[0, 0, 8, 8], [8, 0, 16, 8], [16, 0, 24, 8], [24, 0, 32, 8], [0, 0, 16, 16], [16, 0, 32, 16.0]]
)
FCOS_GTS = torch.tensor([[0, 0, 24, 16], [8, 0, 16, 8.0]])  # A (area 384), B (area 64)


def fcos_assigner(radius=1.5):
    return FCOSPointAssigner(strides=[8, 16], size_ranges=[(-1, 16), (16, math.inf)],
                             center_sampling_radius=radius)  # fmt: skip


def test_fcos_assignment_hand_checked():
    # p0 (4, 4): inside A, max(l, t, r, b) = max(4, 4, 20, 12) = 20 > 16: not on level 0.
    # p1 (12, 4): in A's centre region (12 +- 12, 8 +- 12 clipped to A) with max 12, and in B's
    #     (its centre) with max 4: both qualify, the smaller B wins.
    # p2 (20, 4): max(20, 4, 4, 12) = 20: out of level 0's range. p3 (28, 4): outside A.
    # q0 (8, 8): in A's region, max(8, 8, 16, 8) = 16 in [16, inf): positive for A.
    # q1 (24, 8): on A's right side (distance 0): not strictly inside.
    r = fcos_assigner()(POINTS, [4, 2], FCOS_GTS, torch.tensor([5, 6]))
    assert r.matched_gt.tolist() == [BACKGROUND, 1, BACKGROUND, BACKGROUND, 0, BACKGROUND]


def test_fcos_centre_sampling_radius_restricts_positives():
    # With radius 0.1 stride, A's centre region on level 1 is 12 +- 1.6, 8 +- 1.6: q0 (8, 8)
    # falls outside; B's region on level 0 is 12 +- 0.8, 4 +- 0.8 and still holds p1.
    r = fcos_assigner(radius=0.1)(POINTS, [4, 2], FCOS_GTS, torch.tensor([5, 6]))
    assert r.matched_gt.tolist() == [BACKGROUND, 1] + [BACKGROUND] * 4


def test_fcos_image_without_gt_and_padding_points():
    empty = fcos_assigner()(POINTS, [4, 2], torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert empty.matched_gt.tolist() == [BACKGROUND] * 6
    valid = torch.tensor([True, False, True, True, True, True])
    r = fcos_assigner()(POINTS, [4, 2], FCOS_GTS, torch.tensor([5, 6]), valid_mask=valid)
    assert r.matched_gt.tolist() == [BACKGROUND, IGNORE, BACKGROUND, BACKGROUND, 0, BACKGROUND]


# ------------------------------------------------------------------------------------------------
# box coding and loss terms
# ------------------------------------------------------------------------------------------------
def test_ltrb_coder_round_trip_and_agrees_with_detectron2_on_square_sources():
    torch.manual_seed(0)
    centers = torch.rand(20, 2) * 100
    side = torch.rand(20, 1) * 30 + 4
    squares = torch.cat([centers - side / 2, centers + side / 2], 1)
    targets = torch.cat([centers - torch.rand(20, 2) * 50, centers + torch.rand(20, 2) * 50], 1)
    ours = Box2BoxTransformLTRB()
    d2 = Box2BoxTransformLinear(normalize_by_size=True)
    assert torch.allclose(ours.get_deltas(squares, targets), d2.get_deltas(squares, targets))
    deltas = ours.get_deltas(squares, targets)
    assert torch.allclose(ours.apply_deltas(deltas, squares), targets, atol=1e-4)
    assert torch.allclose(d2.apply_deltas(deltas, squares), targets, atol=1e-4)


def test_ltrb_coder_normalises_each_axis_by_its_own_size():
    src = torch.tensor([[0.0, 0.0, 10.0, 40.0]])  # 10 wide, 40 tall, centre (5, 20)
    target = torch.tensor([[0.0, 0.0, 15.0, 30.0]])
    deltas = Box2BoxTransformLTRB().get_deltas(src, target)
    assert deltas.tolist() == [[0.5, 0.5, 1.0, 0.25]]
    assert Box2BoxTransformLTRB().apply_deltas(deltas, src).tolist() == [[0.0, 0.0, 15.0, 30.0]]
    # negative distances are clamped: the decoded box always contains the point
    assert Box2BoxTransformLTRB().apply_deltas(-deltas, src).tolist() == [[5.0, 20.0, 5.0, 20.0]]


def test_centerness_and_l1_terms():
    points = torch.tensor([[5.0, 5.0], [2.0, 5.0], [0.0, 5.0]])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]]).expand(3, 4)
    # (l, t, r, b) = (5, 5, 5, 5) -> 1; (2, 5, 8, 5) -> sqrt(2 / 8) = 0.5; on the border -> 0
    assert centerness_target(points, boxes).tolist() == pytest.approx([1.0, 0.5, 0.0])
    pred, target = torch.tensor([[0.0, 1.0, -2.0, 0.05]]), torch.zeros(1, 4)
    assert smooth_l1_loss_per_box(pred, target).tolist() == pytest.approx([3.05])
    assert smooth_l1_loss_per_box(pred, target, beta=0.1).tolist() == pytest.approx(
        [0.95 + 1.95 + 0.5 * 0.05**2 / 0.1]
    )


# ------------------------------------------------------------------------------------------------
# the three bases train on the digits dataset and return boxes in image space
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("digits"))
    name = "bases_digits_train"
    if name not in DatasetCatalog.list():
        register_digits_dataset(name, split="train", num_images=4, root=root)
    return name


BASES = {
    "table3_bases/retinanet.py": {"loss_cls", "loss_bbox"},
    "table3_bases/fcos.py": {"loss_cls", "loss_bbox", "loss_centerness"},
    "table3_bases/atss.py": {"loss_cls", "loss_bbox", "loss_iou"},
}


@pytest.mark.parametrize("config", sorted(BASES))
def test_base_trains_on_digits_and_infers_in_image_space(config, tiny_digits):
    torch.manual_seed(0)
    cfg = load_tool("study").digits_variant(paper_config(config), max_iter=3, output_dir="unused")
    cfg.dataloader.train.dataset.names = tiny_digits
    cfg.dataloader.train.total_batch_size = 2
    model = instantiate(cfg.model)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = iter(instantiate(cfg.dataloader.train))
    with EventStorage():
        for _ in range(3):
            losses = model(next(data))
            assert set(losses) == BASES[config]
            total = sum(losses.values())
            assert all(math.isfinite(v.item()) for v in losses.values()), losses
            optimizer.zero_grad()
            total.backward()
            optimizer.step()

    # Inference on a 256 x 256 network input of an image that is 384 wide and 512 tall: the
    # boxes come back in the original image's coordinates.
    model.eval()
    model.test_score_thresh = 0.0  # a 3-step model is not confident; keep every candidate
    image = next(data)[0]["image"]
    with torch.no_grad():
        net_space = model([{"image": image}])[0]["instances"]
        image_space = model([{"image": image, "height": 512, "width": 384}])[0]["instances"]
    assert len(image_space) > 0 and image_space.image_size == (512, 384)
    boxes = image_space.pred_boxes.tensor
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= 384).all()
    assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= 512).all()
    scale = torch.tensor([384 / 256, 512 / 256, 384 / 256, 512 / 256])
    assert torch.allclose(boxes, net_space.pred_boxes.tensor * scale, atol=1e-3)


def test_digits_variant_scales_object_sizes_consistently():
    study = load_tool("study")
    sizes = {}
    for config in ("table3_bases/retinanet.py", "table3_bases/fcos.py", "table3_bases/atss.py"):
        small = study.digits_variant(paper_config(config), max_iter=10, output_dir="x")
        sizes[config] = small
        assert small.train.max_iter == 10 and small.model.num_classes == 10
        assert small.dataloader.train.dataset.names == "digits_det_train"
    retina = sizes["table3_bases/retinanet.py"].model.anchor_generator.sizes
    assert retina[0] == pytest.approx([8.0, 8 * 2 ** (1 / 3), 8 * 2 ** (2 / 3)])  # 32 / 4 ...
    assert sizes["table3_bases/atss.py"].model.anchor_generator.sizes == [[16], [32], [64], [128],
                                                                          [256]]  # fmt: skip
    fcos = sizes["table3_bases/fcos.py"].model
    assert fcos.anchor_generator.sizes == [[8], [16], [32], [64], [128]]  # points stay strides
    assert fcos.cls_assigner.size_ranges[:2] == [[-1, 16], [16, 32]]


# ------------------------------------------------------------------------------------------------
# the bases through yacs
# ------------------------------------------------------------------------------------------------
def test_yacs_retinanet_and_fcos_bases():
    cfg = small_yacs_cfg()
    d = cfg.MODEL.DDOD
    d.ASSIGNER, d.CLS_POS_IOU, d.REG_POS_IOU = "max_iou", 0.5, 0.4
    d.BOX_CODER, d.BBOX_REG_WEIGHTS = "delta_xywh", (1.0, 1.0, 1.0, 1.0)
    d.BOX_REG_LOSS_TYPE, d.QUALITY_TARGET, d.SCORE_MODE_TEST = "smooth_l1", "none", "cls"
    d.HEAD_NORM, d.HEAD_PER_LEVEL_SCALE = "", False
    d.CLS_DEFORM_INDEX = d.REG_DEFORM_INDEX = -1
    d.LEVEL_REWEIGHTING = False
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[x, x * 1.26, x * 1.59] for x in (16, 32, 64, 128, 256)]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    retina = build_model(cfg)
    assert isinstance(retina.cls_assigner, MaxIoUAssigner) and retina.head.num_anchors == 9
    assert retina.reg_assigner.pos_iou_thresh == 0.4 and retina.head.quality is None

    cfg = small_yacs_cfg()
    d = cfg.MODEL.DDOD
    d.ASSIGNER, d.SEPARATE_ASSIGNMENT, d.BOX_CODER = "fcos", False, "ltrb"
    d.QUALITY_TARGET, d.CENTERNESS_WEIGHTED_BOX_LOSS = "centerness", True
    d.FCOS_SIZE_RANGES = [[-1, 16], [16, 32], [32, 64], [64, 128], [128, 1e8]]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[8], [16], [32], [64], [128]]
    cfg.MODEL.ANCHOR_GENERATOR.OFFSET = 0.5
    fcos = build_model(cfg)
    assert isinstance(fcos.cls_assigner, FCOSPointAssigner) and fcos.reg_assigner is None
    assert fcos.cls_assigner.strides == [8, 16, 32, 64, 128]
    for model, quality_loss in ((retina, None), (fcos, "loss_centerness")):
        model.train()
        with EventStorage():
            losses = model([make_input(256, 256, [[20, 30, 200, 180]], [1])])
        assert ("loss_centerness" in losses) == (quality_loss is not None)
        sum(losses.values()).backward()
