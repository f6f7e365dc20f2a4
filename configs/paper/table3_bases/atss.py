# Paper Table 3: ATSS (IoU branch) R-50 1x baseline (configs/common/models/atss.py).
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.atss import model

train.output_dir = "./output/paper/table3_bases/atss"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=3, row="ATSS", AP=39.4, AP50=56.6, AP75=42.6, APs=23.9, APm=42.5, APl=49.6)
