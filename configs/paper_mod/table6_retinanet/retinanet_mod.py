# MOD paper Table 6: MOD on RetinaNet: RFA on the RetinaNet towers (last conv, DCNv2 with
# bias; the head has no norm) and APS over the 9 anchors of each point, keeping a point's lowest-loss anchor
# (num_anchors_per_point=9). RetinaNet's L1 box loss and scores stay (the paper does not say
# more).
from detectron2.config import LazyCall as L

from ddod.modeling import APSAssigner

from ...common.mod_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.retinanet import model

model.head.cls_deform_index = -1
model.head.reg_deform_index = -1
model.head.deform_modulated = True
model.head.deform_bias = True
model.cls_assigner = L(APSAssigner)(num_anchors_per_point=9)

train.output_dir = "./output/paper_mod/table6_retinanet/retinanet_mod"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="MOD", table=6, row="RetinaNet + MOD", AP=39.8)
