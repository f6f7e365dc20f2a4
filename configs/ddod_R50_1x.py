# DDOD (ATSS base), ResNet-50-FPN, COCO 2017, 1x schedule: the paper's main setting
# (41.6 AP on val2017 in the paper, Table 3/4).
#
# 1x = 90k iterations x 16 images (~12 epochs of the 118k train2017 images), lr 0.01 with a
# 1k-iteration linear warm-up from 0.001x, x0.1 at 60k and 80k. The reference trained 12 epochs at
# 16 images and lr 0.01 (mmdetection port) or 32 images and lr 0.02 (official code), which the
# authors say is equivalent under linear scaling.
#
#   python train_net.py --config-file configs/ddod_R50_1x.py --num-gpus 8
#   python train_net.py --config-file configs/ddod_R50_1x.py --eval-only \
#       train.init_checkpoint=output/ddod_R50_1x/model_final.pth
from .common.data.coco import dataloader
from .common.models.ddod import model
from .common.optim import SGD as optimizer
from .common.schedule import lr_multiplier_1x as lr_multiplier
from .common.train import train

dataloader.train.total_batch_size = 16
optimizer.lr = 0.01
train.max_iter = 90000
train.output_dir = "./output/ddod_R50_1x"
# detectron2's ImageNet R-50 (MSRA, BGR, std 1); needs internet or a local copy of the file.
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
