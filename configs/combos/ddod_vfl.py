# DDOD (configs/ddod_R50_1x.py) with VarifocalNet's varifocal loss in place of focal loss: the
# classification target at a positive is the IoU of DDOD's predicted box with its GT (alpha 0.75,
# gamma 2, q-weighted). Everything else is DDOD's, the IoU branch and cls x IoU scoring included.
# No published number.
from detectron2.config import LazyCall as L

from ddod.modeling import VarifocalLoss

from ..common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ..common.models.ddod import model

model.cls_loss = L(VarifocalLoss)(alpha=0.75, gamma=2.0, iou_weighted=True)
train.output_dir = "./output/combos/ddod_vfl"
