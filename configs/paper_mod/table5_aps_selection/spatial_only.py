# MOD paper Table 5: APS ablation, with RFA: no level selection, spatial selection (GMM over every level's
# top-9).
from ...common.mod_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.mod import model

model.cls_assigner.num_levels = None

train.output_dir = "./output/paper_mod/table5_aps_selection/spatial_only"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="MOD", table=5, row="level no, spatial yes", AP=41.0)
