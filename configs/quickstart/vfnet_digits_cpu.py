# A small VarifocalNet trained from scratch on the built-in digits dataset, on a CPU, with the
# sizes, data, optimizer, schedule and seed of ./ddod_digits_cpu.py, so that the two compare
# (README, "VarifocalNet"). Every part of configs/vfnet_R50_1x.py's model is here (VFNetHead with
# star DCN and refinement, ATSS, varifocal loss, IoU-weighted GIoU on both boxes); only the sizes
# shrink: R18/16 from scratch, FPN and head at 64 channels, objects of 16-192 px, so anchors are
# 2 x stride and the head's reg_denoms a quarter of COCO's (16..256).
#
#   python train_net.py --config-file configs/quickstart/vfnet_digits_cpu.py
from detectron2.layers import ShapeSpec

from ..common.data.digits import dataloader
from ..common.models.vfnet import model
from ..common.optim import SGD as optimizer
from ..common.schedule import multistep_schedule
from ..common.train import train

bottom_up = model.backbone.bottom_up
bottom_up.stem.out_channels = 16
bottom_up.stem.norm = "BN"
bottom_up.stages.depth = 18
bottom_up.stages.base_channels = 16
bottom_up.stages.norm = "BN"
bottom_up.freeze_at = 0
model.backbone.out_channels = 64
model.backbone.top_block.in_channels = 64
model.backbone.top_block.out_channels = 64
model.head.input_shape = [ShapeSpec(channels=64)] * 5
model.head.conv_dims = 64
model.head.reg_denoms = [16, 32, 64, 128, 256]
model.anchor_generator.sizes = [[16], [32], [64], [128], [256]]
model.num_classes = 10
model.pixel_std = [57.375, 57.120, 58.395]

dataloader.train.total_batch_size = 8
optimizer.lr = 0.02

train.max_iter = 700
lr_multiplier = multistep_schedule(train.max_iter, warmup_iters=50)
train.device = "cpu"
train.seed = 42
train.eval_period = 0
train.checkpointer.period = 200
train.log_period = 20
train.output_dir = "./output/quickstart_vfnet_digits"
