# ATSS with an IoU branch in place of centerness: the paper's ATSS baseline (39.4 AP, Tables 2-7;
# the official code's "ATSS(IoU)"). It is DDOD (./ddod.py) with the three disentanglements off:
#   * one plain ATSS assignment (IoU of the anchor) shared by both branches;
#   * no deformable conv in the head towers;
#   * every FPN level weighted 1.
# ./disentangle.py switches each one back on.
from detectron2.config import LazyCall as L

from ddod.modeling import ATSSAssigner

from .ddod import model

model.cls_assigner = L(ATSSAssigner)(topk=9)
model.reg_assigner = None
model.head.cls_deform_index = None
model.head.reg_deform_index = None
model.level_reweighting.strategy = "none"
