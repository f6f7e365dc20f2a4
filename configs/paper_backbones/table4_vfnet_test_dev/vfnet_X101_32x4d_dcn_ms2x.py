# VFNet paper Table 4 / released model: VFNet, X-101-32x4d-DCN-FPN, multi-scale 2x
# (test-dev 50.0 AP; the released model has 49.7 on val2017).
# Recipe of configs/common/vfnet_2x_ms.py (24 epochs = 180k iterations, steps at epochs 16
# and 22, training short side in [480, 960]); Table 4's other column trained in [640, 800]
# for 49.2 AP (multiscale_train(dataloader, (640, 800)) gives that setting).
# DCN = DCNv2 in res3-res5, the official mdconv_c3-c5 configs.
from ...common.vfnet_2x_ms import dataloader, lr_multiplier, optimizer, train
from ...common.models.backbones import use_backbone
from ...common.models.vfnet import model

train.init_checkpoint = use_backbone(model, "X-101-32x4d", dcn=True)
train.output_dir = "./output/paper_backbones/table4_vfnet_test_dev/vfnet_X101_32x4d_dcn_ms2x"
# the published COCO result of this row (tools/list_configs.py prints them all)
paper = dict(
    method="VFNet", table=4, row="VFNet X-101-32x4d-DCN MS-2x", split="test-dev", AP=50.0,
    val=49.7, ap_640_800=49.2,
)
