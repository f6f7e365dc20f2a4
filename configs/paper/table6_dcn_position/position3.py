# Paper Table 6: ATSS R-50 1x with conv 3 of 4 of both head towers deformable; no other
# disentanglement.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import deformable_conv_at
from ...common.models.atss import model

deformable_conv_at(model, 3)
train.output_dir = "./output/paper/table6_dcn_position/position3"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=6, row="position 3", AP=40.1, AP50=57.9, AP75=43.4, APs=23.0, APm=44.6, APl=52.4)
