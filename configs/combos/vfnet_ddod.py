# VarifocalNet (configs/vfnet_R50_1x.py) with both of DDOD's disentanglements that apply to it:
# the two cost-based assigners (./vfnet_ddod_assignment.py) and Linear-Interpolate* level weights
# (./vfnet_level_reweighting.py). (VFNet's star DCN already separates the two branches' sampling
# from the towers' features; DDOD's deformable first convs are not added.) No published number.
from ..common.models.disentangle import reweight_levels, separate_cost_assignment
from ..common.models.vfnet import model
from ..common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

separate_cost_assignment(model, cls_alpha=0.8, reg_alpha=0.5)
reweight_levels(model, "linear_interpolate", cumulative=True)
train.output_dir = "./output/combos/vfnet_ddod"
