# VarifocalNet with DDOD's two cost-based assigners (configs/combos/vfnet_ddod_assignment.py) at
# the digits/CPU size of ./vfnet_digits_cpu.py, for the README's digits comparison.
#
#   python train_net.py --config-file configs/quickstart/vfnet_ddod_assign_digits_cpu.py
from ..common.models.disentangle import separate_cost_assignment
from .vfnet_digits_cpu import dataloader, lr_multiplier, model, optimizer, train

separate_cost_assignment(model, cls_alpha=0.8, reg_alpha=0.5)
train.output_dir = "./output/quickstart_vfnet_ddod_assign_digits"
