# MOD paper Table 2: FCOS-imprv with the GIoU quality branch (the baseline): FCOS* with the GIoU target and
# sqrt(cls x quality) scores, FCOS's assignment, no RFA.
from ...common.mod_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.fcos import model

model.quality_target = "giou"
model.test_score_mode = "sqrt_cls_x_quality"

train.output_dir = "./output/paper_mod/table2_components/fcos_giou"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="MOD", table=2, row="FCOS (GIoU branch)", AP=39.4, AP50=57.3, AP75=42.7)
