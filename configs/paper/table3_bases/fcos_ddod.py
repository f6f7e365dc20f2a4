# Paper Table 3: FCOS* R-50 1x + DDOD, as the official code's DDOD-FCOS (shared/spec/ddod.md §9):
#   * two cost-based ATSS assigners on the points, alpha 0.8 (cls) and 0.5 (reg);
#   * an IoU branch in place of centerness (paper §5.1: the cost needs box quality), so the
#     box loss is no longer centerness-weighted and scores are cls x IoU;
#   * box outputs start at 1.5 strides per side (the official DDOD-FCOS head's bias 1.5), so
#     the cost sees non-zero IoUs from the first iteration;
#   * a deformable first conv in each tower and Linear-Interpolate* level weights.
from ...common.coco_1x import dataloader, lr_multiplier, optimizer, train
from ...common.models.disentangle import (
    deformable_conv_at,
    reweight_levels,
    separate_cost_assignment,
)
from ...common.models.fcos import model

separate_cost_assignment(model, cls_alpha=0.8, reg_alpha=0.5)
model.quality_target = "iou"
model.centerness_weighted_box_loss = False
model.head.bbox_bias_init = 1.5
deformable_conv_at(model, 1)
reweight_levels(model, "linear_interpolate", cumulative=True)
train.output_dir = "./output/paper/table3_bases/fcos_ddod"
# the paper's COCO val2017 result for this row (tools/list_configs.py prints them all)
paper = dict(
    table=3,
    row="FCOS* + DDOD",
    AP=41.6, AP50=59.7, AP75=45.3, APs=24.3, APm=45.0, APl=55.1,
)
