# TSCODE paper Table 4: DDOD + TSCODE (SCE and DPE).
# Host: DDOD (configs/common/models/ddod.py), R-50 1x, COCO.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.ddod import model
from ...common.models.tscode import use_tscode

use_tscode(model, sce=True, dpe=True)
train.output_dir = "./output/paper_tscode/table4_hosts/ddod_tscode"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="TSCODE", table=4, row="DDOD + TSCODE", AP=42.4, AP50=60.2, AP75=46.3)
