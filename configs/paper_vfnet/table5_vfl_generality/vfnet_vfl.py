# VarifocalNet paper Table 5: VFNet + VFL: VFNet (configs/common/models/vfnet.py), R-50 1x, with
# the varifocal loss. (The paper's FoveaBox, RepPoints and GFL rows have no config: those parts are
# not in the project.)
from detectron2.config import LazyCall as L

from ddod.modeling import VarifocalLoss

from ...common.models.vfnet import model
from ...common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

model.cls_loss = L(VarifocalLoss)(alpha=0.75, gamma=2.0, iou_weighted=True)
train.output_dir = "./output/paper_vfnet/table5_vfl_generality/vfnet_vfl"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="VFNet", table=5, row="VFNet + VFL", AP=41.6, AP50=59.5, AP75=45.0)
