# VarifocalNet with unweighted GIoU terms (each positive counts 1, normalised by the positive
# count, as ATSS/DDOD): the control for VFNet's IoU weighting of the box losses
# (./vfnet_box_loss_paper_eq3.py, configs/vfnet_R50_1x.py). No published number.
from ..common.models.vfnet import model
from ..common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

model.iou_weighted_box_loss = False
train.output_dir = "./output/variants/vfnet_box_loss_unweighted"
