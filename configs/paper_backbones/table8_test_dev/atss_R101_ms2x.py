# DDOD paper Table 8: ATSS, R-101-FPN, COCO multi-scale 2x (test-dev 43.6 AP).
# The model is this project's ATSS base (configs/common/models/atss.py: an IoU branch
# where the published ATSS has centerness), on the 2x recipe of configs/common/coco_2x_ms.py
# (training short side in [640, 800], ATSS's range).
from ...common.coco_2x_ms import dataloader, lr_multiplier, optimizer, train
from ...common.models.backbones import use_backbone
from ...common.models.atss import model

train.init_checkpoint = use_backbone(model, "R-101")
train.output_dir = "./output/paper_backbones/table8_test_dev/atss_R101_ms2x"
# the published COCO result of this row (tools/list_configs.py prints them all)
paper = dict(
    method="ATSS", table=8, row="ATSS R-101", split="test-dev", AP=43.6, AP50=62.1, AP75=47.4,
    APs=26.1, APm=47.0, APl=53.6,
)
