# DDOD paper Table 8: DDOD, X-101-32x4d-DCN-FPN, COCO multi-scale 2x (test-dev 50.1 AP).
# DCN = DCNv2 in res3-res5 (configs/common/models/backbones.py).
# Multi-scale 2x recipe of configs/common/coco_2x_ms.py (180k iterations, training short side
# in [640, 800]: the paper gives no range). test-dev AP: evaluate on coco_2017_test-dev and
# submit to the COCO server.
from ...common.coco_2x_ms import dataloader, lr_multiplier, optimizer, train
from ...common.models.backbones import use_backbone
from ...common.models.ddod import model

train.init_checkpoint = use_backbone(model, "X-101-32x4d", dcn=True)
train.output_dir = "./output/paper_backbones/table8_test_dev/ddod_X101_32x4d_dcn_ms2x"
# the published COCO result of this row (tools/list_configs.py prints them all)
paper = dict(
    method="DDOD", table=8, row="DDOD X-101-32x4d-DCN", split="test-dev", AP=50.1, AP50=69.0,
    AP75=54.8, APs=30.8, APm=53.5, APl=63.2,
)
