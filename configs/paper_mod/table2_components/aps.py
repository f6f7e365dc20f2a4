# MOD paper Table 2: + APS: the baseline with the aligned points sampler, plain towers.
from ...common.mod_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.mod import model

model.head.cls_deform_index = None
model.head.reg_deform_index = None

train.output_dir = "./output/paper_mod/table2_components/aps"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="MOD", table=2, row="+ APS", AP=40.4)
