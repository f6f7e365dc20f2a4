"""VarifocalNet's multi-scale 2x recipe (official ``vfnet_*_mstrain_2x_coco``, the released
models and the second column of the paper's Table 4): configs/common/vfnet_2x.py with the training
short side drawn from [480, 960] (max 1333); testing at 800 / 1333, single scale.
"""
from .data.multiscale import multiscale_train
from .vfnet_2x import dataloader, lr_multiplier, optimizer, train

multiscale_train(dataloader, (480, 960))
