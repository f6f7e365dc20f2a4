# VarifocalNet, ResNet-50-FPN, COCO 2017, 1x: the official R50 1x (41.6 AP on val2017 and on
# test-dev) with its recipe (configs/common/vfnet_1x.py: lr 0.01, 500-iteration warm-up from
# 0.1x, 2x lr and no decay on biases, steps at epochs 8 and 11, no SWA).
#
#   python train_net.py --config-file configs/vfnet_R50_1x.py --num-gpus 8
#   python train_net.py --config-file configs/vfnet_R50_1x.py --eval-only \
#       train.init_checkpoint=output/vfnet_R50_1x/model_final.pth
from .common.models.vfnet import model
from .common.vfnet_1x import dataloader, lr_multiplier, optimizer, train

train.output_dir = "./output/vfnet_R50_1x"
