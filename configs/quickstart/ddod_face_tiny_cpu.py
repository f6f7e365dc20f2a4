# DDOD-Face at CPU size: every part of configs/ddod_face_R50_widerface.py (SSH neck, DIoU,
# TinaFace anchors on P2-P7, square crops, cosine restarts, gradient clipping, the official
# WIDER FACE evaluation) with a small network: ResNet-18 at a quarter width with BN, from scratch,
# no deformable backbone stages (R-18 has no bottleneck to deform), 32-channel FPN / SSH / head,
# 128 x 128 training crops, test images at their own size. A smoke test, not a face detector:
# the tests run it for a few iterations on a synthetic WIDER-format set
# (ddod.data.write_synthetic_widerface); on the real data use the R-50 config.
#
#   python train_net.py --config-file configs/quickstart/ddod_face_tiny_cpu.py
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from ..common.models.ddod_face import model
from ..common.widerface_600e import dataloader, optimizer, train
from ..common.schedule import cosine_restarts_schedule

bottom_up = model.backbone.backbone.bottom_up
bottom_up.stem.out_channels = 16
bottom_up.stem.norm = "BN"
bottom_up.stages.depth = 18
bottom_up.stages.base_channels = 16
bottom_up.stages.norm = "BN"
bottom_up.stages.deform_on_per_stage = [False] * 4
bottom_up.freeze_at = 0
model.backbone.backbone.out_channels = 32
model.backbone.backbone.top_block.in_channels = 32
model.backbone.backbone.top_block.out_channels = 32
model.backbone.norm = "BN"  # GN's 32 groups do not divide SSH's 8-channel branches here
model.head.input_shape = [ShapeSpec(channels=32)] * 6
model.head.conv_dims = 32
model.head.num_convs = 2
model.pixel_std = [57.375, 57.120, 58.395]

dataloader.train.mapper.augmentations[1] = L(T.Resize)(shape=(128, 128))
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 0
dataloader.test.mapper.augmentations = []
dataloader.test.num_workers = 0

optimizer.lr = 0.01
train.max_iter = 40
lr_multiplier = cosine_restarts_schedule(train.max_iter, cycles=2, end_factor=0.01, warmup_iters=5)
train.init_checkpoint = ""
train.device = "cpu"
train.seed = 42
train.eval_period = 0
train.checkpointer.period = 20
train.log_period = 10
train.output_dir = "./output/quickstart_ddod_face_tiny"
