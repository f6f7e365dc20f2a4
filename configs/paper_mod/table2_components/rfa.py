# MOD paper Table 2: + RFA: the baseline with the receptive field adaptor (MOD's head), FCOS's assignment.
from ...common.mod_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.fcos import model as _fcos
from ...common.models.mod import model

model.cls_assigner = _fcos.cls_assigner

train.output_dir = "./output/paper_mod/table2_components/rfa"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(method="MOD", table=2, row="+ RFA", AP=40.5)
