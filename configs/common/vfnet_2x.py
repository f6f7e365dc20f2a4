"""VarifocalNet's 2x recipe (official ``vfnet_r101_fpn_2x_coco``; shared/spec/related_methods.md
§1.6): configs/common/vfnet_1x.py (lr 0.01, 2x lr and no decay on biases, 500-iteration warm-up
from 0.1x) for 24 epochs = 180k iterations x 16 images, lr x0.1 at epochs 16 and 22. One training
scale (800 / 1333); configs/common/vfnet_2x_ms.py adds the multi-scale range.
"""
from .schedule import multistep_schedule
from .vfnet_1x import dataloader, optimizer, train

train.max_iter = 180000
lr_multiplier = multistep_schedule(
    180000, warmup_iters=500, warmup_factor=0.1, steps=(16 / 24, 22 / 24)
)
