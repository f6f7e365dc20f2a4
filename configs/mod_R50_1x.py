# MOD (RFA + APS), ResNet-50-FPN, COCO 2017, 1x: the official code's model and recipe (41.7 AP on
# val2017 in the paper's Table 2). The README's MOD section lists where the code and the paper
# differ and which one each default follows.
#
#   python train_net.py --config-file configs/mod_R50_1x.py --num-gpus 8
from .common.mod_1x import dataloader, lr_multiplier, optimizer, train
from .common.models.mod import model

train.output_dir = "./output/mod_R50_1x"
