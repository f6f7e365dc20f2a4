"""The COCO multi-scale 2x recipe of DDOD's and ATSS's test-dev results (DDOD paper Table 8; ATSS's
official ``*_2x`` configs): configs/common/coco_1x.py's data, optimizer and loop, for twice as
long, with multi-scale training.

* 2x = 180k iterations x 16 images (~24 epochs), lr 0.01, x0.1 at 120k and 160k, 1k warm-up;
* training short side drawn from [640, 800] (max 1333): ATSS's MIN_SIZE_RANGE_TRAIN. DDOD's
  paper says only "multi-scale training"; this is our choice, change it with
  ``multiscale_train(dataloader, (480, 960))``; testing at 800 / 1333, single scale.
"""
from .coco_1x import dataloader, optimizer, train
from .data.multiscale import multiscale_train
from .schedule import lr_multiplier_2x as lr_multiplier

multiscale_train(dataloader, (640, 800))
train.max_iter = 180000
