# DDOD paper Table 8: DDOD, R-50-FPN, COCO multi-scale 2x (test-dev 45.0 AP).
# Multi-scale 2x recipe of configs/common/coco_2x_ms.py (180k iterations, training short side
# in [640, 800]: the paper gives no range). test-dev AP: evaluate on coco_2017_test-dev and
# submit to the COCO server.
from ...common.coco_2x_ms import dataloader, lr_multiplier, optimizer, train
from ...common.models.backbones import use_backbone
from ...common.models.ddod import model

train.init_checkpoint = use_backbone(model, "R-50")
train.output_dir = "./output/paper_backbones/table8_test_dev/ddod_R50_ms2x"
# the published COCO result of this row (tools/list_configs.py prints them all)
paper = dict(
    method="DDOD", table=8, row="DDOD R-50", split="test-dev", AP=45.0, AP50=63.5, AP75=49.3,
    APs=27.2, APm=47.9, APl=55.9,
)
