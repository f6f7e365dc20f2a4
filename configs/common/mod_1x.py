"""MOD's official COCO R-50 1x recipe (shared/spec/related_methods.md §3.7), for
configs/mod_R50_1x.py and the MOD table configs (configs/paper_mod/**).

* SGD, lr 0.01 at 16 images, momentum 0.9, weight decay 1e-4; biases get 2x lr and no weight
  decay (maskrcnn-benchmark's BIAS_LR_FACTOR 2, WEIGHT_DECAY_BIAS 0);
* 90k iterations, lr x0.1 at 60k and 80k; constant warm-up at 1/3 of the lr for 500 iterations;
* 1333 x 800, horizontal flip (the project's COCO data config).
"""
from .data.coco import dataloader
from .optim import SGD as optimizer
from .schedule import multistep_schedule
from .train import train

dataloader.train.total_batch_size = 16
optimizer.lr = 0.01
optimizer.params.base_lr = "${..lr}"
optimizer.params.bias_lr_factor = 2.0
optimizer.params.weight_decay_bias = 0.0
train.max_iter = 90000
lr_multiplier = multistep_schedule(90000, warmup_iters=500, warmup_factor=1 / 3)
lr_multiplier.warmup_method = "constant"
# detectron2's ImageNet R-50 (MSRA, BGR, std 1); needs internet or a local copy of the file.
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
