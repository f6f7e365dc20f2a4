# The ATSS baseline (configs/common/models/atss.py: DDOD with its three disentanglements off) at
# the digits/CPU size of ./ddod_digits_cpu.py, for the README's digits comparison.
#
#   python train_net.py --config-file configs/quickstart/atss_digits_cpu.py
from detectron2.config import LazyCall as L

from ddod.modeling import ATSSAssigner

from .ddod_digits_cpu import dataloader, lr_multiplier, model, optimizer, train

model.cls_assigner = L(ATSSAssigner)(topk=9)
model.reg_assigner = None
model.head.cls_deform_index = None
model.head.reg_deform_index = None
model.level_reweighting.strategy = "none"
train.output_dir = "./output/quickstart_atss_digits"
