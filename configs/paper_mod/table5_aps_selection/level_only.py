# MOD paper Table 5: APS ablation, with RFA: level selection (the two best levels), no spatial selection.
from ...common.mod_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.mod import model

model.cls_assigner.spatial_selection = False

train.output_dir = "./output/paper_mod/table5_aps_selection/level_only"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="MOD", table=5, row="level yes, spatial no", AP=40.8)
