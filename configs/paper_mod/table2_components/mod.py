# MOD paper Table 2: MOD = RFA + APS (configs/mod_R50_1x.py).
from ...common.mod_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.mod import model

train.output_dir = "./output/paper_mod/table2_components/mod"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="MOD", table=2, row="MOD (RFA + APS)", AP=41.7, AP50=59.3, AP75=45.1)
