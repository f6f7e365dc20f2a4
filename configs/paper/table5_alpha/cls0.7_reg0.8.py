# Paper Table 5: ATSS R-50 1x with cost-based assignment per branch,
# alpha_cls = 0.7, alpha_reg = 0.8 (cost = p^(1-alpha) * IoU^alpha); no other disentanglement.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import separate_cost_assignment
from ...common.models.atss import model

separate_cost_assignment(model, cls_alpha=0.7, reg_alpha=0.8)
train.output_dir = "./output/paper/table5_alpha/cls0.7_reg0.8"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=5, row="alpha_cls=0.7 alpha_reg=0.8", AP=39.6)
