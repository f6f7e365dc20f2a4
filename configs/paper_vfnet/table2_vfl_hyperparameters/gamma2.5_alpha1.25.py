# VarifocalNet paper Table 2: VFNet R-50 1x with the varifocal loss at gamma = 2.5, alpha = 1.25
# (positives weighted by their IoU target q); everything else is configs/vfnet_R50_1x.py. (The
# (gamma, alpha) pairs of the last two rows are read from the paper's text extraction, which is
# partly garbled for this table; check them against the PDF.)
from detectron2.config import LazyCall as L

from ddod.modeling import VarifocalLoss

from ...common.models.vfnet import model
from ...common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

model.cls_loss = L(VarifocalLoss)(alpha=1.25, gamma=2.5, iou_weighted=True)
train.output_dir = "./output/paper_vfnet/table2_vfl_hyperparameters/gamma2.5_alpha1.25"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="VFNet", table=2, row="gamma=2.5 alpha=1.25", AP=41.5, AP50=59.4, AP75=45.2)
