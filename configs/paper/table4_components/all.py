# Paper Table 4: ATSS R-50 1x with all three disentanglements (= DDOD, configs/ddod_R50_1x.py).
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import (
    deformable_conv_at,
    reweight_levels,
    separate_cost_assignment,
)
from ...common.models.atss import model

separate_cost_assignment(model, cls_alpha=0.8, reg_alpha=0.5)
deformable_conv_at(model, 1)
reweight_levels(model, "linear_interpolate", cumulative=True)
train.output_dir = "./output/paper/table4_components/all"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(table=4, row="all three", AP=41.6, AP50=59.9, AP75=45.2, APs=23.9, APm=44.9, APl=54.4)
