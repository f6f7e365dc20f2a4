# MOD paper Table 6: MOD on RetinaNet, the baseline: RetinaNet (configs/common/models/retinanet.py).
from ...common.mod_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.retinanet import model

train.output_dir = "./output/paper_mod/table6_retinanet/retinanet"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="MOD", table=6, row="RetinaNet", AP=36.5)
