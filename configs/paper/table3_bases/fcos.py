# Paper Table 3: FCOS* R-50 1x baseline (configs/common/models/fcos.py).
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.fcos import model

train.output_dir = "./output/paper/table3_bases/fcos"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=3, row="FCOS*", AP=39.2, AP50=57.3, AP75=42.4, APs=22.7, APm=43.1, APl=51.5)
