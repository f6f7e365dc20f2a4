# TSCODE paper Table 2: SCE from conv 7x7 + P_{l+1} (SCE only, on FCOS*).
# Host: FCOS* (configs/common/models/fcos.py; the paper's FCOS is mmdetection's, 38.7 AP),
# R-50 1x, COCO.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.fcos import model
from ...common.models.tscode import use_tscode

use_tscode(model, sce=True, dpe=False, sce_downsample="conv7")
train.output_dir = "./output/paper_tscode/table2_sce_variants/conv7x7"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="TSCODE", table=2, row="conv 7x7 + P_{l+1}", AP=39.2, GFLOPs=196.65)
