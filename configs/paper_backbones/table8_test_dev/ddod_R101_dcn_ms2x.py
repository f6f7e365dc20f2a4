# DDOD paper Table 8: DDOD, R-101-DCN-FPN, COCO multi-scale 2x (test-dev 49.0 AP).
# DCN = DCNv2 in res3-res5 (configs/common/models/backbones.py).
# Multi-scale 2x recipe of configs/common/coco_2x_ms.py (180k iterations, training short side
# in [640, 800]: the paper gives no range). test-dev AP: evaluate on coco_2017_test-dev and
# submit to the COCO server.
from ...common.coco_2x_ms import dataloader, lr_multiplier, optimizer, train
from ...common.models.backbones import use_backbone
from ...common.models.ddod import model

train.init_checkpoint = use_backbone(model, "R-101", dcn=True)
train.output_dir = "./output/paper_backbones/table8_test_dev/ddod_R101_dcn_ms2x"
# the published COCO result of this row (tools/list_configs.py prints them all)
paper = dict(
    method="DDOD", table=8, row="DDOD R-101-DCN", split="test-dev", AP=49.0, AP50=67.7, AP75=53.6,
    APs=29.6, APm=52.2, APl=62.3,
)
