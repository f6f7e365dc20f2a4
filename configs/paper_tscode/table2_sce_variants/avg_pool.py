# TSCODE paper Table 2: SCE from avg pool 3x3 + P_{l+1} (SCE only, on FCOS*).
# Host: FCOS* (configs/common/models/fcos.py; the paper's FCOS is mmdetection's, 38.7 AP),
# R-50 1x, COCO.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.fcos import model
from ...common.models.tscode import use_tscode

use_tscode(model, sce=True, dpe=False, sce_downsample="avg")
train.output_dir = "./output/paper_tscode/table2_sce_variants/avg_pool"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="TSCODE", table=2, row="avg pool 3x3 + P_{l+1}", AP=39.1, GFLOPs=179.47)
