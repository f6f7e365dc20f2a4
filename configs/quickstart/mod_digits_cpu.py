# MOD (RFA + APS, configs/common/models/mod.py) at the digits/CPU size of ./fcos_digits_cpu.py.
#
#   python train_net.py --config-file configs/quickstart/mod_digits_cpu.py
from ..common.models.mod import model as _mod
from .fcos_rfa_digits_cpu import dataloader, lr_multiplier, model, optimizer, train

model.cls_assigner = _mod.cls_assigner
train.output_dir = "./output/quickstart_mod_digits"
