# GFL with TSCODE (SCE and DPE) at the digits/CPU size of ./gfl_digits_cpu.py. The quickstart's
# res2 (16 channels) is narrower than its FPN (64), so a 1x1 conv projects it; SCE's tower is
# 2 x 128 (twice the head width, as 2 x 512 on a 256-wide head).
#
#   python train_net.py --config-file configs/quickstart/gfl_tscode_digits_cpu.py
from ..common.models.tscode import use_tscode
from .gfl_digits_cpu import dataloader, lr_multiplier, model, optimizer, train

use_tscode(model)
train.output_dir = "./output/quickstart_gfl_tscode_digits"
