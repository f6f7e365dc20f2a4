# ATSS with TSCODE (SCE and DPE) at the digits/CPU size of ./atss_digits_cpu.py (res2 projected by
# a 1x1 conv; SCE tower 2 x 128).
#
#   python train_net.py --config-file configs/quickstart/atss_tscode_digits_cpu.py
from ..common.models.tscode import use_tscode
from .atss_digits_cpu import dataloader, lr_multiplier, model, optimizer, train

use_tscode(model)
train.output_dir = "./output/quickstart_atss_tscode_digits"
