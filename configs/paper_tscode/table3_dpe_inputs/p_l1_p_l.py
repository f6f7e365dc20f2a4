# TSCODE paper Table 3: DPE from P_{l+1}, P_l (SCE on, FCOS*).
# Host: FCOS* (configs/common/models/fcos.py; the paper's FCOS is mmdetection's, 38.7 AP),
# R-50 1x, COCO.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.fcos import model
from ...common.models.tscode import use_tscode

use_tscode(model, sce=True, dpe=True, dpe_inputs=['same', 'next'])
train.output_dir = "./output/paper_tscode/table3_dpe_inputs/p_l1_p_l"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="TSCODE", table=3, row="P_{l+1}, P_l", AP=39.4)
