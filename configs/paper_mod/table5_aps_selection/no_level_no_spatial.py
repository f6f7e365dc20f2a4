# MOD paper Table 5: APS ablation, with RFA: no level selection (every level's top-9), no spatial selection
# (every candidate positive).
from ...common.mod_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.mod import model

model.cls_assigner.num_levels = None
model.cls_assigner.spatial_selection = False

train.output_dir = "./output/paper_mod/table5_aps_selection/no_level_no_spatial"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="MOD", table=5, row="level no, spatial no", AP=40.5)
