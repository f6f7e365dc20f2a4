# TSCODE paper Table 3: DPE from P_{l+2}, P_{l+1}, P_l, P_{l-1} (SCE on, FCOS*).
# Host: FCOS* (configs/common/models/fcos.py; the paper's FCOS is mmdetection's, 38.7 AP),
# R-50 1x, COCO.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.fcos import model
from ...common.models.tscode import use_tscode

use_tscode(model, sce=True, dpe=True, dpe_inputs=['prev', 'same', 'next', 'next2'])
train.output_dir = "./output/paper_tscode/table3_dpe_inputs/p_l2_p_l1_p_l_p_lm1"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="TSCODE", table=3, row="P_{l+2}, P_{l+1}, P_l, P_{l-1}", AP=39.9)
