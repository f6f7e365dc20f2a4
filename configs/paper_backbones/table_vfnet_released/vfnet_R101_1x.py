# VFNet released model (official README): VFNet, R-101-FPN, 1x, one training scale
# (test-dev 43.6 AP, val2017 43.0), recipe of configs/common/vfnet_1x.py.
from ...common.vfnet_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.backbones import use_backbone
from ...common.models.vfnet import model

train.init_checkpoint = use_backbone(model, "R-101")
train.output_dir = "./output/paper_backbones/table_vfnet_released/vfnet_R101_1x"
# the published COCO result of this row (tools/list_configs.py prints them all)
paper = dict(
    method="VFNet", table="released", row="VFNet R-101 1x", split="test-dev", AP=43.6, val=43.0,
)
