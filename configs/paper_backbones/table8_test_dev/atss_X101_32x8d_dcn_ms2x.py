# DDOD paper Table 8: ATSS, X-101-32x8d-DCN-FPN, COCO multi-scale 2x (test-dev 47.7 AP).
# The model is this project's ATSS base (configs/common/models/atss.py: an IoU branch
# where the published ATSS has centerness), on the 2x recipe of configs/common/coco_2x_ms.py
# (training short side in [640, 800], ATSS's range).
# DCN = DCNv2 in res3-res5; ATSS's official DCN models (we believe) also put a
# deformable conv in the head towers, which this config does not.
from ...common.coco_2x_ms import dataloader, lr_multiplier, optimizer, train
from ...common.models.backbones import use_backbone
from ...common.models.atss import model

train.init_checkpoint = use_backbone(model, "X-101-32x8d", dcn=True)
train.output_dir = "./output/paper_backbones/table8_test_dev/atss_X101_32x8d_dcn_ms2x"
# the published COCO result of this row (tools/list_configs.py prints them all)
paper = dict(
    method="ATSS", table=8, row="ATSS X-101-32x8d-DCN", split="test-dev", AP=47.7, AP50=66.6,
    AP75=52.1, APs=29.3, APm=50.8, APl=59.7,
)
