# VFNet paper Table 4 / released model: VFNet, X-101-32x4d-FPN, multi-scale 2x
# (test-dev 47.6 AP; the released model has 47.4 on val2017).
# Recipe of configs/common/vfnet_2x_ms.py (24 epochs = 180k iterations, steps at epochs 16
# and 22, training short side in [480, 960]); Table 4's other column trained in [640, 800]
# for 46.7 AP (multiscale_train(dataloader, (640, 800)) gives that setting).
from ...common.vfnet_2x_ms import dataloader, lr_multiplier, optimizer, train
from ...common.models.backbones import use_backbone
from ...common.models.vfnet import model

train.init_checkpoint = use_backbone(model, "X-101-32x4d")
train.output_dir = "./output/paper_backbones/table4_vfnet_test_dev/vfnet_X101_32x4d_ms2x"
# the published COCO result of this row (tools/list_configs.py prints them all)
paper = dict(
    method="VFNet", table=4, row="VFNet X-101-32x4d MS-2x", split="test-dev", AP=47.6, val=47.4,
    ap_640_800=46.7,
)
