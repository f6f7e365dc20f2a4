# Paper Table 3: RetinaNet R-50 1x baseline (configs/common/models/retinanet.py).
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.retinanet import model

train.output_dir = "./output/paper/table3_bases/retinanet"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=3, row="RetinaNet", AP=36.5, AP50=55.4, AP75=39.1, APs=20.4, APm=40.3, APl=48.1)
