# DDOD with TSCODE (SCE and DPE) at the digits/CPU size of ./ddod_digits_cpu.py: the deformable
# first conv of the classification tower is now the first conv of SCE's 2 x 128 tower.
#
#   python train_net.py --config-file configs/quickstart/ddod_tscode_digits_cpu.py
from ..common.models.tscode import use_tscode
from .ddod_digits_cpu import dataloader, lr_multiplier, model, optimizer, train

use_tscode(model)
train.output_dir = "./output/quickstart_ddod_tscode_digits"
