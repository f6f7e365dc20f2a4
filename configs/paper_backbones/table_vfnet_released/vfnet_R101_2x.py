# VFNet released model (official README): VFNet, R-101-FPN, 2x, one training scale
# (test-dev 43.9 AP, val2017 43.5), recipe of configs/common/vfnet_2x.py.
from ...common.vfnet_2x import dataloader, lr_multiplier, optimizer, train
from ...common.models.backbones import use_backbone
from ...common.models.vfnet import model

train.init_checkpoint = use_backbone(model, "R-101")
train.output_dir = "./output/paper_backbones/table_vfnet_released/vfnet_R101_2x"
# the published COCO result of this row (tools/list_configs.py prints them all)
paper = dict(
    method="VFNet", table="released", row="VFNet R-101 2x", split="test-dev", AP=43.9, val=43.5,
)
