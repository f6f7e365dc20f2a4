# Paper Table 2: ATSS R-50 1x with fixed per-level loss weights going linearly from 1.0 on
# P3 to 1.0 on P7 (= the baseline).
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import reweight_levels
from ...common.models.atss import model

reweight_levels(model, "fixed_linear", start=1.0, end=1.0)
train.output_dir = "./output/paper/table2_fixed_level_weights/w1to1"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=2, row="1~1", AP=39.4, AP50=56.6, AP75=42.6, APs=23.9, APm=42.5, APl=49.6)
