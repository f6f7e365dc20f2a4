# VarifocalNet paper Table 5: ATSS + VFL: the project's ATSS base (configs/common/models/atss.py;
# the paper's ATSS is mmdetection's, with centerness, ours has DDOD's IoU branch), R-50 1x, with
# the varifocal loss. The VFL target at a positive is the IoU of its predicted box with its GT.
# (The paper's FoveaBox, RepPoints and GFL rows have no config: those parts are not in the
# project.)
from detectron2.config import LazyCall as L

from ddod.modeling import VarifocalLoss

from ...common.models.atss import model
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train

model.cls_loss = L(VarifocalLoss)(alpha=0.75, gamma=2.0, iou_weighted=True)
train.output_dir = "./output/paper_vfnet/table5_vfl_generality/atss_vfl"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="VFNet", table=5, row="ATSS + VFL", AP=40.2, AP50=58.2, AP75=44.0)
