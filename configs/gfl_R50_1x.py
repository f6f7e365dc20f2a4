# GFL (Generalized Focal Loss) R-50-FPN 1x on COCO: the official recipe (mmdetection's
# gfl_r50_fpn_1x_coco: batch 16, lr 0.01, 12 epochs; 40.2 AP on val2017 in TSCODE's Table 1).
# The model is configs/common/models/gfl.py.
from .common.data.coco import dataloader
from .common.models.gfl import model
from .common.optim import SGD as optimizer
from .common.schedule import lr_multiplier_1x as lr_multiplier
from .common.train import train

dataloader.train.total_batch_size = 16
optimizer.lr = 0.01
train.max_iter = 90000
train.output_dir = "./output/gfl_R50_1x"
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
