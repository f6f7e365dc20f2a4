# VarifocalNet paper Table 2: VFNet R-50 1x with the varifocal loss at gamma = 2.0, alpha = 0.75
# (positives weighted by their IoU target q); everything else is configs/vfnet_R50_1x.py.
from detectron2.config import LazyCall as L

from ddod.modeling import VarifocalLoss

from ...common.models.vfnet import model
from ...common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

model.cls_loss = L(VarifocalLoss)(alpha=0.75, gamma=2.0, iou_weighted=True)
train.output_dir = "./output/paper_vfnet/table2_vfl_hyperparameters/gamma2.0_alpha0.75"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="VFNet", table=2, row="gamma=2.0 alpha=0.75", AP=41.6, AP50=59.5, AP75=45.0)
