"""DDOD-Face parts: DIoU/CIoU losses, the SSH neck, the square crop, the cosine-restart schedule
and gradient clipping."""
import math
import os

import numpy as np
import pytest
import torch

import ddod  # noqa: F401
import detectron2.data.transforms as T
from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ciou_loss, diou_loss
from detectron2.structures import BoxMode
from detectron2.utils.events import EventStorage

from ddod.data import BoxAwareDatasetMapper, RandomSquareCrop
from ddod.engine import SGDWithGradClip
from ddod.modeling import SSHContextModule, SSHNeck
from ddod.modeling.losses import (
    BOX_REG_LOSS_TYPES,
    ciou_loss_per_box,
    diou_loss_per_box,
    weighted_box_loss,
)

from .common import make_input, tiny_ddod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------
# DIoU / CIoU
# ------------------------------------------------------------------------------------------
def test_diou_and_ciou_hand_computed():
    # same shape, shifted by 2: IoU 4/12, enclosing 6 x 2 (c^2 = 40), centres 2 apart (rho^2 = 4)
    p, t = torch.tensor([[0.0, 0, 4, 2]]), torch.tensor([[2.0, 0, 6, 2]])
    assert diou_loss_per_box(p, t).item() == pytest.approx(1 - 1 / 3 + 4 / 40, abs=1e-6)
    # same aspect ratio: CIoU's v is 0
    assert ciou_loss_per_box(p, t).item() == pytest.approx(1 - 1 / 3 + 4 / 40, abs=1e-6)
    # a 2x2 square in the left half of a 4x2 box: IoU 1/2, c^2 = 20, rho^2 = 1,
    # v = 4/pi^2 (atan(2) - atan(1))^2, alpha = v / (1 - IoU + v)
    p, t = torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[0.0, 0, 4, 2]])
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(1)) ** 2
    diou = 1 - 0.5 + 1 / 20
    assert diou_loss_per_box(p, t).item() == pytest.approx(diou, abs=1e-6)
    assert ciou_loss_per_box(p, t).item() == pytest.approx(diou + v * v / (0.5 + v), abs=1e-6)
    # identical boxes: 0
    assert diou_loss_per_box(t, t).item() == pytest.approx(0, abs=1e-6)


def test_diou_ciou_match_detectron2_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(64, 2, generator=g) * 50
    p = torch.cat([xy, xy + 1 + torch.rand(64, 2, generator=g) * 30], 1).requires_grad_()
    xy = torch.rand(64, 2, generator=g) * 50
    t = torch.cat([xy, xy + 1 + torch.rand(64, 2, generator=g) * 30], 1)
    for ours, theirs in ((diou_loss_per_box, diou_loss), (ciou_loss_per_box, ciou_loss)):
        mine = ours(p, t)
        ref = theirs(p, t, reduction="none")
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-5)
        (g_mine,) = torch.autograd.grad(mine.sum(), p)
        (g_ref,) = torch.autograd.grad(ref.sum(), p)
        torch.testing.assert_close(g_mine, g_ref, rtol=1e-4, atol=1e-5)


def test_box_loss_types_reach_the_detector():
    assert {"giou", "diou", "ciou"} <= set(BOX_REG_LOSS_TYPES)
    p, t = torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[0.0, 0, 4, 2]])
    ones, zero = torch.ones(1), torch.zeros(1, 4)
    assert weighted_box_loss(p, t, zero, zero, ones, torch.tensor(1.0), loss_type="diou").item() \
        == pytest.approx(0.55, abs=1e-6)
    torch.manual_seed(0)
    batch = [make_input(96, 96, [[10, 10, 50, 60]], [1], seed=i) for i in range(2)]
    losses = {}
    for kind in ("giou", "diou", "ciou"):
        torch.manual_seed(0)
        model = tiny_ddod(box_reg_loss_type=kind).train()
        with EventStorage():
            losses[kind] = model(batch)["loss_bbox"].item()
    # same model and data: DIoU >= GIoU's IoU part, and CIoU >= DIoU (extra non-negative term)
    assert all(math.isfinite(v) and v > 0 for v in losses.values())
    assert losses["ciou"] >= losses["diou"] - 1e-6
    with pytest.raises(ValueError, match="box_reg_loss_type"):
        tiny_ddod(box_reg_loss_type="eiou")


# ------------------------------------------------------------------------------------------
# SSH
# ------------------------------------------------------------------------------------------
def test_ssh_context_module_shapes_and_receptive_fields():
    torch.manual_seed(0)
    ssh = SSHContextModule(16, norm="")
    assert ssh.conv3x3.out_channels == 8
    assert ssh.conv5x5.out_channels == ssh.conv7x7_2.out_channels == 4
    y = ssh(torch.randn(2, 16, 15, 15))
    assert y.shape == (2, 16, 15, 15) and (y >= 0).all() and (y == 0).any()
    # positive weights and inputs keep every ReLU open, so gradients show the receptive fields
    with torch.no_grad():
        for p in ssh.parameters():
            p.abs_()
    x = torch.rand(2, 16, 15, 15, requires_grad=True)
    # the input pixels each branch's centre output depends on: 3x3, 5x5 and 7x7
    for channels, size in ((slice(0, 8), 3), (slice(8, 12), 5), (slice(12, 16), 7)):
        x.grad = None
        ssh(x)[0, channels, 7, 7].sum().backward()
        rows, cols = x.grad[0].abs().sum(0).nonzero(as_tuple=True)
        assert rows.max() - rows.min() + 1 == size and cols.max() - cols.min() + 1 == size
    with pytest.raises(ValueError, match="divisible by 4"):
        SSHContextModule(10)


def test_ssh_neck_wraps_any_backbone():
    model = tiny_ddod()
    fpn = model.backbone
    neck = SSHNeck(fpn, in_features=["p3", "p4"], norm="BN")
    assert neck.output_shape() == fpn.output_shape()
    assert neck.size_divisibility == fpn.size_divisibility
    assert set(neck.ssh) == {"p3", "p4"}
    x = torch.rand(1, 3, 64, 64)
    fpn.eval(), neck.eval()
    plain, wrapped = fpn(x), neck(x)
    for name, value in plain.items():
        assert wrapped[name].shape == value.shape
        # levels outside in_features pass through untouched
        assert torch.equal(wrapped[name], value) == (name not in ("p3", "p4"))
    with pytest.raises(ValueError, match="p9"):
        SSHNeck(fpn, in_features=["p9"])
    # in a detector: trains, and the checkpoint keys nest the FPN's under "backbone.backbone"
    model.backbone = SSHNeck(fpn, norm="BN")
    with EventStorage():
        batch = [make_input(64, 64, [[8, 8, 40, 40]], [0], seed=i) for i in range(2)]
        losses = model.train()(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    keys = model.state_dict()
    assert "backbone.ssh.p3.conv3x3.weight" in keys
    assert "backbone.backbone.fpn_lateral3.weight" in keys


# ------------------------------------------------------------------------------------------
# square crop
# ------------------------------------------------------------------------------------------
def test_random_square_crop_is_square_and_keeps_a_face_centre():
    np.random.seed(0)
    image = np.zeros((100, 160, 3), np.uint8)
    boxes = np.array([[62.0, 30, 78, 46]])
    aug = RandomSquareCrop(crop_choice=[0.3, 0.5])
    sides = set()
    for _ in range(20):
        tf = aug.get_transform(image, boxes)
        assert isinstance(tf, T.CropTransform) and tf.w == tf.h
        sides.add(tf.w)
        cx, cy = 70, 38
        assert tf.x0 < cx < tf.x0 + tf.w and tf.y0 < cy < tf.y0 + tf.h
    assert sides == {30, 50}
    boxes = np.array([[140.0, 80, 156, 96]])  # a face in the bottom-right corner
    # no attempt can hold the centre (max_attempts=0): the short-side square around it
    tf = RandomSquareCrop(crop_choice=[0.3], max_attempts=0).get_transform(image, boxes)
    assert (tf.x0, tf.y0, tf.w, tf.h) == (60, 0, 100, 100)
    with pytest.raises(ValueError, match="crop_choice"):
        RandomSquareCrop(crop_choice=[1.5])


def test_box_aware_mapper_drops_faces_whose_centre_leaves_the_crop(tmp_path):
    from PIL import Image

    path = str(tmp_path / "a.jpg")
    Image.new("RGB", (100, 60)).save(path)

    class FixedCrop(T.Augmentation):
        def get_transform(self, image, boxes):
            # sees the non-crowd boxes (XYXY)
            np.testing.assert_array_equal(boxes, [[0, 0, 20, 20], [35, 10, 55, 30]])
            return T.CropTransform(0, 0, 40, 40)

    record = {
        "file_name": path, "height": 60, "width": 100, "image_id": "e/a",
        "annotations": [
            {"bbox": [0, 0, 20, 20], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0},
            # centre (45, 20) outside the 40 x 40 crop, though partly inside it
            {"bbox": [35, 10, 20, 20], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0},
            {"bbox": [0, 0, 5, 5], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0,
             "iscrowd": 1},
        ],
    }  # fmt: skip
    for drop, expected in ((True, 1), (False, 2)):
        mapper = BoxAwareDatasetMapper(
            is_train=True, augmentations=[FixedCrop(), T.Resize((80, 80))], image_format="BGR",
            drop_boxes_with_centre_outside=drop,
        )  # fmt: skip
        out = mapper(record)
        assert out["image"].shape == (3, 80, 80)
        assert len(out["instances"]) == expected
        first = out["instances"].gt_boxes.tensor[0]
        torch.testing.assert_close(first, torch.tensor([0.0, 0, 40, 40]))


# ------------------------------------------------------------------------------------------
# schedule and clipping
# ------------------------------------------------------------------------------------------
def test_cosine_restarts_schedule():
    cfg = LazyConfig.load(os.path.join(ROOT, "configs", "ddod_face_R50_widerface.py"))
    sched = instantiate(cfg.lr_multiplier)
    max_iter, cycle = cfg.train.max_iter, cfg.train.max_iter // 20
    assert max_iter == 600 * 537 and cfg.optimizer.lr == 7.5e-3
    # warm-up from 0.001 x, then 20 cosine cycles from 1 to 0.01 (lr 7.5e-3 -> 7.5e-5)
    assert sched(0.0) == pytest.approx(0.001)
    for k in range(1, 20):
        assert sched(k * cycle / max_iter) == pytest.approx(1.0)
        assert sched((k + 0.5) * cycle / max_iter) == pytest.approx((1 + 0.01) / 2)
        # the last iteration of the cycle
        assert sched(((k + 1) * cycle - 1) / max_iter) == pytest.approx(0.01, abs=1e-6)


def test_sgd_with_grad_clip_clips_the_total_norm():
    w = torch.nn.Parameter(torch.zeros(3))
    b = torch.nn.Parameter(torch.zeros(4))
    opt = SGDWithGradClip([w, b], lr=1.0, clip_max_norm=10.0)
    w.grad, b.grad = torch.full((3,), 30.0), torch.full((4,), 40.0)
    opt.step()
    # plain SGD would move by the gradient; clipped, the total step has norm 10
    assert torch.cat([w, b]).norm().item() == pytest.approx(10.0, rel=1e-5)
    w.grad, b.grad = torch.full((3,), 0.1), torch.zeros(4)
    before = w.detach().clone()
    opt.step()  # a small gradient is untouched
    torch.testing.assert_close(before - w.detach(), torch.full((3,), 0.1))
    plain = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=1.0)
    # the clipping settings stay out of the checkpointed param groups
    groups = opt.state_dict()["param_groups"][0]
    assert groups.keys() == plain.state_dict()["param_groups"][0].keys()
    with pytest.raises(ValueError, match="clip_max_norm"):
        SGDWithGradClip([w], lr=1.0, clip_max_norm=0)


def test_face_configs_record_the_paper_and_use_the_face_parts():
    for name, paper in (
        ("ddod_face_R50_widerface.py", dict(row="DDOD-Face", easy=97.0, medium=96.4, hard=93.5)),
        ("atss_face_R50_widerface.py", dict(row="ATSS", easy=96.4, medium=95.8, hard=93.0)),
    ):
        cfg = LazyConfig.load(os.path.join(ROOT, "configs", name))
        assert cfg.paper.table == 9
        assert {k: cfg.paper[k] for k in paper} == paper
        assert cfg.dataloader.train.total_batch_size == 24
        assert cfg.optimizer.clip_max_norm == 10.0
        assert cfg.model.box_reg_loss_type == "diou"
        assert cfg.dataloader.train.dataset.names == "widerface_train"
        assert cfg.dataloader.test.dataset.names == "widerface_val"
    ddod_face = LazyConfig.load(os.path.join(ROOT, "configs", "ddod_face_R50_widerface.py"))
    assert ddod_face.model.cls_assigner.alpha == 0.8 and ddod_face.model.reg_assigner.alpha == 0.5
    assert cfg.model.reg_assigner is None and cfg.model.head.cls_deform_index is None
