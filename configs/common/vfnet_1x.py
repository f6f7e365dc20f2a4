"""VarifocalNet's official COCO R-50 1x recipe (shared/spec/related_methods.md §1.6): data,
optimizer, schedule and loop of configs/vfnet_R50_1x.py and of every VFNet table config
(configs/paper_vfnet/**) and combination (configs/combos/vfnet_*.py).

* SGD, lr 0.01 at 16 images per batch (not mmdetection's default 0.02), momentum 0.9, weight
  decay 1e-4; biases get 2x lr and no weight decay (mmdetection's ``paramwise_cfg``
  bias_lr_mult=2, bias_decay_mult=0); norm layers are not decayed (the project's default);
* 1x = 90k iterations x 16 images (~12 epochs), lr x0.1 at epochs 8 and 11 (8/12, 11/12 of the
  run, not detectron2's 60k/80k), linear warm-up of 500 iterations from 0.1 x lr;
* horizontal flip only, 1333 x 800, as the project's COCO data config;
* no SWA: the official 1x config inherits ``_base_/swa.py``, which adds 12 cyclic-lr epochs; the
  published 41.6 AP predates it and mmdetection's config has none.
"""
from .data.coco import dataloader
from .optim import SGD as optimizer
from .schedule import multistep_schedule
from .train import train

dataloader.train.total_batch_size = 16
optimizer.lr = 0.01
# 2x lr and no weight decay on biases (detectron2 applies this to every parameter named
# "bias", GN biases included; mmdetection leaves norm biases at 1x lr)
optimizer.params.base_lr = "${..lr}"
optimizer.params.bias_lr_factor = 2.0
optimizer.params.weight_decay_bias = 0.0
train.max_iter = 90000
lr_multiplier = multistep_schedule(
    90000, warmup_iters=500, warmup_factor=0.1, steps=(8 / 12, 11 / 12)
)
# detectron2's ImageNet R-50 (MSRA, BGR, std 1); needs internet or a local copy of the file.
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
