# TSCODE paper Table 2: SCE from conv 3x3, without P_{l+1} (SCE only, on FCOS*). The downsampled
# P_l alone feeds a standard 4 x 256 tower (the paper's GFLOPs imply it, spec §2.6).
# Host: FCOS* (configs/common/models/fcos.py; the paper's FCOS is mmdetection's, 38.7 AP),
# R-50 1x, COCO.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.fcos import model
from ...common.models.tscode import use_tscode

use_tscode(
    model, sce=True, dpe=False, sce_use_next=False, sce_conv_dims=256, sce_num_convs=4
)
train.output_dir = "./output/paper_tscode/table2_sce_variants/p_l_only"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="TSCODE", table=2, row="conv 3x3, without P_{l+1}", AP=38.6, GFLOPs=165.99)
