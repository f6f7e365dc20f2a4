# TSCODE paper Table 1: ATSS + SCE + DPE (the components of TSCODE on three hosts).
# Host: ATSS (configs/common/models/atss.py: ATSS with DDOD's IoU branch; the paper's has
# centerness), R-50 1x, COCO.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.atss import model
from ...common.models.tscode import use_tscode

use_tscode(model, sce=True, dpe=True)
train.output_dir = "./output/paper_tscode/table1_components/atss_both"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="TSCODE", table=1, row="ATSS + SCE + DPE", AP=40.8, GFLOPs=199.94)
