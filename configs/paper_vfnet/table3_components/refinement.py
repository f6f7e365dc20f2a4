# VarifocalNet paper Table 3: VFNet R-50 1x components, + the box refinement: the full VFNet (=
# configs/vfnet_R50_1x.py). Box losses: GIoU weighted by the box's own IoU, as in VFNet; scores =
# sigmoid(cls).
from ...common.models.vfnet import model
from ...common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

train.output_dir = "./output/paper_vfnet/table3_components/refinement"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="VFNet", table=3, row="+ box refinement (VFNet)", AP=41.6, AP50=59.5, AP75=45.0)
