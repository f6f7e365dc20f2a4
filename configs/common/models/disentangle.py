"""DDOD's three disentanglements as switches on a model config of any base (retinanet.py, fcos.py,
atss.py). Each function changes only its own part of ``model``::

    from ..common.models.atss import model
    from ..common.models.disentangle import deformable_conv_at, reweight_levels

    deformable_conv_at(model, 2)                       # Table 6, position 2
    reweight_levels(model, "sum_reweight", cumulative=True)   # Table 7, Sum-Reweight*
"""
from detectron2.config import LazyCall as L

from ddod.modeling import CostATSSAssigner, LevelReweighting, MaxIoUAssigner


def separate_iou_assignment(model, *, cls_pos_iou=0.5, reg_pos_iou=0.4, neg_iou=0.4):
    """Label assignment disentanglement for RetinaNet (paper Table 1): one IoU assigner per branch.

    Classification: positive at IoU >= ``cls_pos_iou``, background below min(``neg_iou``,
    ``cls_pos_iou``), ignored in between. Regression: positive at IoU >= ``reg_pos_iou`` (its
    negatives do not matter). Both keep each GT's best anchor. Equal thresholds give the shared
    assignment's positive sets.
    """
    model.cls_assigner = L(MaxIoUAssigner)(
        pos_iou_thresh=cls_pos_iou, neg_iou_thresh=min(neg_iou, cls_pos_iou)
    )
    model.reg_assigner = L(MaxIoUAssigner)(
        pos_iou_thresh=reg_pos_iou, neg_iou_thresh=min(neg_iou, reg_pos_iou)
    )


def separate_cost_assignment(model, *, cls_alpha=0.8, reg_alpha=0.5, topk=9):
    """Label assignment disentanglement of DDOD (paper §4.1, Table 5): a cost-based ATSS per
    branch, cost = p^(1 - alpha) * IoU(predicted box, GT)^alpha."""
    model.cls_assigner = L(CostATSSAssigner)(alpha=cls_alpha, topk=topk)
    model.reg_assigner = L(CostATSSAssigner)(alpha=reg_alpha, topk=topk)


def deformable_conv_at(model, position):
    """Spatial feature disentanglement (paper §4.2, Table 6): the tower conv at ``position``
    (1-based, as in Table 6; 1 = the first conv after the FPN) of both towers becomes deformable.
    ``None`` leaves every conv plain."""
    index = None if position is None else position - 1
    model.head.cls_deform_index = index
    model.head.reg_deform_index = index


def reweight_levels(
    model,
    strategy="linear_interpolate",
    *,
    cumulative=True,
    start=1.0,
    end=2.0,
    shared_counters=False,
    sync=True,
):
    """Pyramid supervision disentanglement (paper §4.3, Tables 2 and 7): per-level loss factors.

    See ``ddod.modeling.losses.level_reweighting`` for the strategies ("none", "fixed_linear",
    "linear_reweight", "sum_reweight", "linear_interpolate"). ``cumulative`` is the paper's "*".
    """
    model.level_reweighting = L(LevelReweighting)(
        num_levels=len(model.head_in_features),
        strategy=strategy,
        cumulative=cumulative,
        start=start,
        end=end,
        shared_counters=shared_counters,
        sync=sync,
    )
