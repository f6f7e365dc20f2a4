# Paper Table 7: ATSS R-50 1x with Linear-Interpolate* level weights (counts accumulated since
# iteration 0); no other disentanglement. Formulas: ddod.modeling.losses.level_reweighting.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import reweight_levels
from ...common.models.atss import model

reweight_levels(model, "linear_interpolate", cumulative=True)
train.output_dir = "./output/paper/table7_reweighting/linear_interpolate_cumulative"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(
    table=7,
    row="Linear-Interpolate*",
    AP=40.0, AP50=57.9, AP75=43.4, APs=22.9, APm=43.6, APl=52.6,
)
