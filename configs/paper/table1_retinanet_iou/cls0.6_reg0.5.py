# Paper Table 1: RetinaNet R-50 1x with separate classification and regression IoU
# thresholds, IoU_cls = 0.6, IoU_reg = 0.5 (see disentangle.separate_iou_assignment).
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import separate_iou_assignment
from ...common.models.retinanet import model

separate_iou_assignment(model, cls_pos_iou=0.6, reg_pos_iou=0.5)
train.output_dir = "./output/paper/table1_retinanet_iou/cls0.6_reg0.5"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=1, row="IoU_cls=0.6 IoU_reg=0.5", AP=35.2)
