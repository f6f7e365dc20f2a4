# The ATSS baseline of DDOD-Face (paper Table 9: 96.4 / 95.8 / 93.0 AP on WIDER FACE val easy /
# medium / hard): ./ddod_face_R50_widerface.py with DDOD's three disentanglements off, as
# configs/common/models/atss.py does on COCO: one plain ATSS assignment for both branches, no
# deformable conv in the head towers, every FPN level weighted 1. The face parts (DCN backbone,
# SSH, DIoU, TinaFace anchors) and the recipe are kept.
#
#   python train_net.py --config-file configs/atss_face_R50_widerface.py --num-gpus 8
from detectron2.config import LazyCall as L

from ddod.modeling import ATSSAssigner

from .common.models.ddod_face import model
from .common.widerface_600e import dataloader, lr_multiplier, optimizer, train

model.cls_assigner = L(ATSSAssigner)(topk=9)
model.reg_assigner = None
model.head.cls_deform_index = None
model.head.reg_deform_index = None
model.level_reweighting.strategy = "none"
train.output_dir = "./output/atss_face_R50_widerface"
paper = dict(method="DDOD", table=9, row="ATSS", easy=96.4, medium=95.8, hard=93.0)
