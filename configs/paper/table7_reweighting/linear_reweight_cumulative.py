# Paper Table 7: ATSS R-50 1x with Linear-Reweight* level weights (counts accumulated since
# iteration 0); no other disentanglement. Formulas: ddod.modeling.losses.level_reweighting.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import reweight_levels
from ...common.models.atss import model

reweight_levels(model, "linear_reweight", cumulative=True)
train.output_dir = "./output/paper/table7_reweighting/linear_reweight_cumulative"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(
    table=7,
    row="Linear-Reweight*",
    AP=39.8, AP50=57.7, AP75=42.9, APs=23.0, APm=43.5, APl=52.0,
)
