# A small VarifocalNet trained from scratch on the built-in digits dataset, on a CPU, with the
# sizes, data, optimizer, schedule and seed of ./ddod_digits_cpu.py, so that the two compare
# (README, "VarifocalNet"). Every part of configs/vfnet_R50_1x.py's model is here (VFNetHead with
# star DCN and refinement, ATSS, varifocal loss, IoU-weighted GIoU on both boxes); only the sizes
# shrink, as ./ddod_digits_cpu.py shrinks DDOD's: R18/16 from scratch, FPN and head at 64
# channels, objects of 16-192 px, so anchors are 2 x stride and the head's reg_denoms a quarter
# of COCO's (16..256).
#
#   python train_net.py --config-file configs/quickstart/vfnet_digits_cpu.py
from ..common.models.vfnet import model
from .ddod_digits_cpu import dataloader, lr_multiplier, optimizer, train
from .ddod_digits_cpu import model as _small

# the digits backbone/FPN and anchors, with VFNet's neck (ReLU before P7)
model.backbone = _small.backbone
model.backbone.top_block.relu_before_p7 = True
model.anchor_generator = _small.anchor_generator
model.head.input_shape = _small.head.input_shape
model.head.conv_dims = _small.head.conv_dims
model.head.reg_denoms = [16, 32, 64, 128, 256]
model.num_classes = _small.num_classes
model.pixel_std = _small.pixel_std
train.output_dir = "./output/quickstart_vfnet_digits"
