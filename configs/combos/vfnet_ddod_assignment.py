# VarifocalNet (configs/vfnet_R50_1x.py) with DDOD's label-assignment disentanglement: a
# cost-based ATSS per branch, cost = p^(1 - alpha) * IoU(refined box, GT)^alpha, alpha 0.8 for the
# classification (VFL) positives and 0.5 for the box-loss positives. The VFL target stays the
# refined box's IoU, now with the GT of the classification assignment. No published number.
from ..common.models.disentangle import separate_cost_assignment
from ..common.models.vfnet import model
from ..common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

separate_cost_assignment(model, cls_alpha=0.8, reg_alpha=0.5)
train.output_dir = "./output/combos/vfnet_ddod_assignment"
