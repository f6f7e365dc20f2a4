# TSCODE paper Table 1: GFL + SCE (the components of TSCODE on three hosts).
# Host: GFL (configs/common/models/gfl.py), R-50 1x, COCO.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.gfl import model
from ...common.models.tscode import use_tscode

use_tscode(model, sce=True, dpe=False)
train.output_dir = "./output/paper_tscode/table1_components/gfl_sce"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="TSCODE", table=1, row="GFL + SCE", AP=41.1)
