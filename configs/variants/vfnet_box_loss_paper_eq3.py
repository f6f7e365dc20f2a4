# VarifocalNet with the box-loss weighting of the paper's Eq. 3 instead of the official code's
# (shared/spec/related_methods.md §1.9): both GIoU terms (initial x 1.5, refined x 2.0) weighted
# by the refined box's IoU (the VFL target q) and normalised by the positive count; the code
# weights each box by its own IoU and normalises by the IoU sum. No published number: the paper
# reports only the code's setting (41.6 AP).
from ..common.models.vfnet import model
from ..common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

model.iou_weighting = "scored_iou"
train.output_dir = "./output/variants/vfnet_box_loss_paper_eq3"
