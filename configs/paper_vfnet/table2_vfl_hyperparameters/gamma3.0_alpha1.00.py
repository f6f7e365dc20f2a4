# VarifocalNet paper Table 2: VFNet R-50 1x with the varifocal loss at gamma = 3.0, alpha = 1.00
# (positives weighted by their IoU target q); everything else is configs/vfnet_R50_1x.py. (The
# (gamma, alpha) pairs of the last two rows are read from the paper's text extraction, which is
# partly garbled for this table; check them against the PDF.)
from detectron2.config import LazyCall as L

from ddod.modeling import VarifocalLoss

from ...common.models.vfnet import model
from ...common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

model.cls_loss = L(VarifocalLoss)(alpha=1.0, gamma=3.0, iou_weighted=True)
train.output_dir = "./output/paper_vfnet/table2_vfl_hyperparameters/gamma3.0_alpha1.00"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="VFNet", table=2, row="gamma=3.0 alpha=1.00", AP=41.3, AP50=59.0, AP75=44.7)
