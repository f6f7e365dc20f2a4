# Paper Table 4: ATSS R-50 1x with label assignment disentanglement only (cost-based ATSS, alpha 0.8
# / 0.5).
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import separate_cost_assignment
from ...common.models.atss import model

separate_cost_assignment(model, cls_alpha=0.8, reg_alpha=0.5)
train.output_dir = "./output/paper/table4_components/assignment"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=4, row="assignment", AP=40.4, AP50=58.9, AP75=43.8, APs=24.1, APm=43.9, APl=51.4)
