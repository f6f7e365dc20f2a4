"""The COCO R-50 1x recipe of every paper config (configs/paper/**): data, optimizer, schedule and
training loop, identical to configs/ddod_R50_1x.py's. A paper config imports these four and a
model base (configs/common/models/{retinanet,fcos,atss,ddod}.py), then flips switches.

1x = 90k iterations x 16 images (~12 epochs of train2017), lr 0.01, x0.1 at 60k and 80k, 1k
warm-up: the "standard 1x schedule ... default parameters adopted in MMDetection" of paper §5.1.
"""
from .data.coco import dataloader
from .optim import SGD as optimizer
from .schedule import lr_multiplier_1x as lr_multiplier
from .train import train

dataloader.train.total_batch_size = 16
optimizer.lr = 0.01
train.max_iter = 90000
# detectron2's ImageNet R-50 (MSRA, BGR, std 1); needs internet or a local copy of the file.
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
