# ./fcos_digits_cpu.py + MOD's RFA: the last conv of both towers a modulated deformable conv
# (DCNv2) with bias, GN, ReLU (configs/common/models/mod.py).
#
#   python train_net.py --config-file configs/quickstart/fcos_rfa_digits_cpu.py
from .fcos_digits_cpu import dataloader, lr_multiplier, model, optimizer, train

model.head.cls_deform_index = -1
model.head.reg_deform_index = -1
model.head.deform_modulated = True
model.head.deform_bias = True
train.output_dir = "./output/quickstart_fcos_rfa_digits"
