# TSCODE paper Table 1: FCOS + SCE + DPE (the components of TSCODE on three hosts).
# Host: FCOS* (configs/common/models/fcos.py; the paper's FCOS is mmdetection's, 38.7 AP),
# R-50 1x, COCO.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.fcos import model
from ...common.models.tscode import use_tscode

use_tscode(model, sce=True, dpe=True)
train.output_dir = "./output/paper_tscode/table1_components/fcos_both"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="TSCODE", table=1, row="FCOS + SCE + DPE", AP=40.0, GFLOPs=195.22)
