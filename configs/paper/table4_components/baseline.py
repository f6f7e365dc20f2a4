# Paper Table 4: ATSS R-50 1x with no disentanglement (the ATSS baseline).
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.atss import model

train.output_dir = "./output/paper/table4_components/baseline"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=4, row="none", AP=39.4, AP50=56.6, AP75=42.6, APs=23.9, APm=42.5, APl=49.6)
