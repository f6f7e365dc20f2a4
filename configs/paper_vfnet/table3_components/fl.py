# VarifocalNet paper Table 3: VFNet R-50 1x components, the raw VFNet: FCOS+ATSS without
# centerness, trained with focal loss; no star DCN, no refinement. Box losses: GIoU weighted by the
# box's own IoU, as in VFNet; scores = sigmoid(cls).
from detectron2.config import LazyCall as L

from ddod.modeling import FocalLoss

from ...common.models.vfnet import model
from ...common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

model.cls_loss = L(FocalLoss)(alpha=0.25, gamma=2.0)
model.head.star_dcn = False  # plain 3x3 convs where the star DCNs were
model.head.refine = False  # the initial box is the scored box
# its loss keeps the initial box's weight (the ablation code is not public)
model.loss_bbox_weight = 1.5
train.output_dir = "./output/paper_vfnet/table3_components/fl"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="VFNet", table=3, row="raw VFNet + FL", AP=39.0, AP50=57.7, AP75=41.8)
