# MOD's baseline, FCOS-imprv with the GIoU quality branch (configs/paper_mod/table2_components/
# fcos_giou.py), at the digits/CPU size of ./ddod_digits_cpu.py (same data, optimizer, schedule,
# seed), for the README's MOD digits comparison. The objects are 16-192 px on 256 px images, so
# FCOS's per-level size ranges are a quarter of COCO's (as ./vfnet_digits_cpu.py's reg_denoms).
#
#   python train_net.py --config-file configs/quickstart/fcos_digits_cpu.py
from ..common.models.fcos import model
from .ddod_digits_cpu import dataloader, lr_multiplier, optimizer, train
from .ddod_digits_cpu import model as _small

model.backbone = _small.backbone
model.backbone.top_block.relu_before_p7 = True
model.anchor_generator.sizes = [[8], [16], [32], [64], [128]]  # = strides: points
model.head.input_shape = _small.head.input_shape
model.head.conv_dims = _small.head.conv_dims
model.head.num_convs = _small.head.num_convs
model.num_classes = _small.num_classes
model.pixel_std = _small.pixel_std
model.cls_assigner.size_ranges = [[-1, 16], [16, 32], [32, 64], [64, 128], [128, 100000000]]
model.quality_target = "giou"
model.test_score_mode = "sqrt_cls_x_quality"
train.output_dir = "./output/quickstart_fcos_digits"
