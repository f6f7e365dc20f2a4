# Paper Table 4: ATSS R-50 1x with spatial feature disentanglement only (deformable first conv in
# both towers).
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import deformable_conv_at
from ...common.models.atss import model

deformable_conv_at(model, 1)
train.output_dir = "./output/paper/table4_components/spatial"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(
    table=4,
    row="spatial feature",
    AP=40.6, AP50=58.6, AP75=44.1, APs=24.0, APm=44.1, APl=52.5,
)
