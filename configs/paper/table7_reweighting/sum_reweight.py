# Paper Table 7: ATSS R-50 1x with Sum-Reweight level weights (counts of the current batch); no
# other disentanglement. Formulas: ddod.modeling.losses.level_reweighting.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import reweight_levels
from ...common.models.atss import model

reweight_levels(model, "sum_reweight", cumulative=False)
train.output_dir = "./output/paper/table7_reweighting/sum_reweight"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(
    table=7,
    row="Sum-Reweight",
    AP=39.7, AP50=57.5, AP75=43.2, APs=22.6, APm=43.3, APl=52.1,
)
