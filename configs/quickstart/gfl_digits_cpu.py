# GFL (configs/common/models/gfl.py) at the digits/CPU size of ./ddod_digits_cpu.py (same backbone,
# widths, anchors, data, schedule and seed), for the README's digits comparison.
#
#   python train_net.py --config-file configs/quickstart/gfl_digits_cpu.py
from ..common.models.gfl import model
from .ddod_digits_cpu import dataloader, lr_multiplier, optimizer, train
from .ddod_digits_cpu import model as _small

model.backbone = _small.backbone
model.anchor_generator = _small.anchor_generator
model.head.input_shape = _small.head.input_shape
model.head.conv_dims = _small.head.conv_dims
model.head.num_convs = _small.head.num_convs
model.num_classes = _small.num_classes
model.pixel_std = _small.pixel_std
train.output_dir = "./output/quickstart_gfl_digits"
# the quickstart's anchors are 2 x stride (not 8 x): distances stay in strides
model.box2box_transform.size_divisor = 2.0
