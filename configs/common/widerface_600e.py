"""The DDOD-Face training recipe on WIDER FACE (paper §5.1): batch 24, SGD with lr 7.5e-3
annealed to 7.5e-5 by a cosine every 30 epochs, 20 times (600 epochs), gradient-norm clipping at
10 (the authors' recollection in zehuichen123/DDOD#8: without it the result was "quite bad").

* 600 epochs of the 12,880 training images at 24 per batch = 600 x 537 = 322,200 iterations,
  cycles of 16,110; linear warm-up over the first 500 iterations from 0.001 x (TinaFace's);
* momentum 0.9, weight decay 5e-4 (TinaFace's), norm layers not decayed (the project's default);
* a checkpoint and an evaluation at the end of every cycle.
"""
from .data.widerface import dataloader
from .optim import SGD as optimizer
from .schedule import cosine_restarts_schedule
from .train import train

from ddod.engine import SGDWithGradClip

EPOCH_ITERS = 537  # ceil(12880 / 24)
CYCLE_ITERS = 30 * EPOCH_ITERS

dataloader.train.total_batch_size = 24
optimizer._target_ = SGDWithGradClip
optimizer.clip_max_norm = 10.0
optimizer.lr = 7.5e-3
optimizer.weight_decay = 5e-4
train.max_iter = 20 * CYCLE_ITERS
lr_multiplier = cosine_restarts_schedule(train.max_iter, cycles=20, end_factor=0.01)
train.checkpointer.period = CYCLE_ITERS
train.eval_period = CYCLE_ITERS
# detectron2's ImageNet R-50 (MSRA, BGR, std 1); needs internet or a local copy of the file.
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
