# Paper Table 3: RetinaNet R-50 1x + DDOD. The paper does not spell out DDOD on RetinaNet; we
# apply its three disentanglements with RetinaNet's own assignment:
#   * separate IoU assigners, classification at 0.5 and regression at 0.4 (Table 1's best);
#   * a deformable first conv in each tower (Table 6's best);
#   * Linear-Interpolate level weights on accumulated counts (Table 7's best).
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import (
    deformable_conv_at,
    reweight_levels,
    separate_iou_assignment,
)
from ...common.models.retinanet import model

separate_iou_assignment(model, cls_pos_iou=0.5, reg_pos_iou=0.4)
deformable_conv_at(model, 1)
reweight_levels(model, "linear_interpolate", cumulative=True)
train.output_dir = "./output/paper/table3_bases/retinanet_ddod"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(
    table=3,
    row="RetinaNet + DDOD",
    AP=38.5, AP50=58.1, AP75=41.2, APs=20.7, APm=41.4, APl=51.6,
)
