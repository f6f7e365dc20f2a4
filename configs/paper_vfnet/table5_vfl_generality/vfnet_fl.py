# VarifocalNet paper Table 5: VFNet + FL: VFNet (configs/common/models/vfnet.py), R-50 1x, with the
# focal loss. (The paper's FoveaBox, RepPoints and GFL rows have no config: those parts are not in
# the project.)
from detectron2.config import LazyCall as L

from ddod.modeling import FocalLoss

from ...common.models.vfnet import model
from ...common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

model.cls_loss = L(FocalLoss)(alpha=0.25, gamma=2.0)
train.output_dir = "./output/paper_vfnet/table5_vfl_generality/vfnet_fl"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="VFNet", table=5, row="VFNet + FL", AP=40.0, AP50=58.0, AP75=43.2)
