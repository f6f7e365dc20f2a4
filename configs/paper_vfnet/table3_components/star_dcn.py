# VarifocalNet paper Table 3: VFNet R-50 1x components, + the star-shaped deformable sampling for
# the IACS; no refinement. Box losses: GIoU weighted by the box's own IoU, as in VFNet; scores =
# sigmoid(cls).
from ...common.models.vfnet import model
from ...common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

model.head.refine = False  # the initial box is the scored box
# its loss keeps the initial box's weight (the ablation code is not public)
model.loss_bbox_weight = 1.5
train.output_dir = "./output/paper_vfnet/table3_components/star_dcn"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="VFNet", table=3, row="+ star DCN", AP=40.7, AP50=59.0, AP75=44.0)
