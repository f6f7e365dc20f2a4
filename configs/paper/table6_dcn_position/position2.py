# Paper Table 6: ATSS R-50 1x with conv 2 of 4 of both head towers deformable; no other
# disentanglement.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import deformable_conv_at
from ...common.models.atss import model

deformable_conv_at(model, 2)
train.output_dir = "./output/paper/table6_dcn_position/position2"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=6, row="position 2", AP=40.3, AP50=58.5, AP75=44.1, APs=23.9, APm=44.0, APl=52.4)
