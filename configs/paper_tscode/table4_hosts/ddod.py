# TSCODE paper Table 4: DDOD (the host's baseline).
# Host: DDOD (configs/common/models/ddod.py), R-50 1x, COCO.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.ddod import model

train.output_dir = "./output/paper_tscode/table4_hosts/ddod"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="TSCODE", table=4, row="DDOD", AP=41.6, AP50=59.9, AP75=45.2)
