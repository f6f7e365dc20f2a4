# Paper Table 6: ATSS R-50 1x with conv 1 of 4 of both head towers deformable; no other
# disentanglement.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import deformable_conv_at
from ...common.models.atss import model

deformable_conv_at(model, 1)
train.output_dir = "./output/paper/table6_dcn_position/position1"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=6, row="position 1", AP=40.6, AP50=58.4, AP75=44.3, APs=23.6, APm=44.3, APl=52.4)
