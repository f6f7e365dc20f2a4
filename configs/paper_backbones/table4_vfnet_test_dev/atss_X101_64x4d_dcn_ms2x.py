# VFNet paper Table 4, ATSS baseline: ATSS, X-101-64x4d-DCN-FPN, multi-scale 2x (test-dev 47.7 AP).
# This project's ATSS base (IoU branch where the published ATSS has centerness) on the
# 2x recipe of configs/common/coco_2x_ms.py (training short side in [640, 800]).
# DCN = DCNv2 in res3-res5 (the published model may also deform its head).
from ...common.coco_2x_ms import dataloader, lr_multiplier, optimizer, train
from ...common.models.backbones import use_backbone
from ...common.models.atss import model

train.init_checkpoint = use_backbone(model, "X-101-64x4d", dcn=True)
train.output_dir = "./output/paper_backbones/table4_vfnet_test_dev/atss_X101_64x4d_dcn_ms2x"
# the published COCO result of this row (tools/list_configs.py prints them all)
paper = dict(
    method="ATSS", table=4, row="ATSS X-101-64x4d-DCN MS-2x (VFNet's baseline)", split="test-dev",
    AP=47.7,
)
