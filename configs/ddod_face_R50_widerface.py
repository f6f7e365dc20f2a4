# DDOD-Face, ResNet-50, WIDER FACE: the paper's face result (Table 9: 97.0 / 96.4 / 93.5 AP on
# the val easy / medium / hard subsets). Parts: configs/common/models/ddod_face.py; data and
# evaluation: configs/common/data/widerface.py; recipe (batch 24, 600 epochs of cosine restarts,
# gradient clipping): configs/common/widerface_600e.py.
#
#   python train_net.py --config-file configs/ddod_face_R50_widerface.py --num-gpus 8
#   python train_net.py --config-file configs/ddod_face_R50_widerface.py --eval-only \
#       train.init_checkpoint=output/ddod_face_R50_widerface/model_final.pth
from .common.models.ddod_face import model
from .common.widerface_600e import dataloader, lr_multiplier, optimizer, train

train.output_dir = "./output/ddod_face_R50_widerface"
# the paper's WIDER FACE val results (AP, %), by subset
paper = dict(method="DDOD", table=9, row="DDOD-Face", easy=97.0, medium=96.4, hard=93.5)
