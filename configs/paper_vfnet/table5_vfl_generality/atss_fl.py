# VarifocalNet paper Table 5: ATSS + FL: the project's ATSS base (configs/common/models/atss.py;
# the paper's ATSS is mmdetection's, with centerness, ours has DDOD's IoU branch), R-50 1x, with
# the focal loss. (The paper's FoveaBox, RepPoints and GFL rows have no config: those parts are not
# in the project.)
from detectron2.config import LazyCall as L

from ddod.modeling import FocalLoss

from ...common.models.atss import model
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train

model.cls_loss = L(FocalLoss)(alpha=0.25, gamma=2.0)
train.output_dir = "./output/paper_vfnet/table5_vfl_generality/atss_fl"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="VFNet", table=5, row="ATSS + FL", AP=39.3, AP50=57.5, AP75=42.5)
