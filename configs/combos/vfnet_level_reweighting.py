# VarifocalNet (configs/vfnet_R50_1x.py) with DDOD's pyramid-supervision disentanglement: the
# Linear-Interpolate* per-level loss factors (paper Table 7's best) on the VFL, both GIoU terms
# (their IoU weights times the level factor; still normalised by the IoU sums). No published
# number.
from ..common.models.disentangle import reweight_levels
from ..common.models.vfnet import model
from ..common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

reweight_levels(model, "linear_interpolate", cumulative=True)
train.output_dir = "./output/combos/vfnet_level_reweighting"
