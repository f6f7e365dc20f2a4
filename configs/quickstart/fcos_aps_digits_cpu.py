# ./fcos_digits_cpu.py + MOD's APS in place of FCOS's assignment (plain towers).
#
#   python train_net.py --config-file configs/quickstart/fcos_aps_digits_cpu.py
from ..common.models.mod import model as _mod
from .fcos_digits_cpu import dataloader, lr_multiplier, model, optimizer, train

model.cls_assigner = _mod.cls_assigner
train.output_dir = "./output/quickstart_fcos_aps_digits"
