# DDOD with VarifocalNet's varifocal loss in place of focal loss (configs/combos/ddod_vfl.py) at
# the digits/CPU size of ./ddod_digits_cpu.py, for the README's digits comparison.
#
#   python train_net.py --config-file configs/quickstart/ddod_vfl_digits_cpu.py
from detectron2.config import LazyCall as L

from ddod.modeling import VarifocalLoss

from .ddod_digits_cpu import dataloader, lr_multiplier, model, optimizer, train

model.cls_loss = L(VarifocalLoss)(alpha=0.75, gamma=2.0, iou_weighted=True)
train.output_dir = "./output/quickstart_ddod_vfl_digits"
