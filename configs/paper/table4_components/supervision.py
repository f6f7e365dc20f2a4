# Paper Table 4: ATSS R-50 1x with pyramid supervision disentanglement only (Linear-Interpolate*).
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import reweight_levels
from ...common.models.atss import model

reweight_levels(model, "linear_interpolate", cumulative=True)
train.output_dir = "./output/paper/table4_components/supervision"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(
    table=4,
    row="supervision",
    AP=40.0, AP50=57.9, AP75=43.1, APs=23.0, APm=43.6, APl=52.6,
)
