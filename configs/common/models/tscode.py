"""TSCODE (task-specific context decoupling, shared/spec/related_methods.md §2) on any model
config of the project: DDOD, its bases (RetinaNet, FCOS*, ATSS), GFL; VFNet takes DPE only::

    from ..common.models.atss import model
    from ..common.models.tscode import use_tscode

    use_tscode(model)                       # SCE and DPE
    use_tscode(model, sce=True, dpe=False)  # one of them

Call it after the model's widths are final (it reads the FPN and head widths). It changes:

* the backbone: ``FPNWithBottomUp``, detectron2's FPN that also outputs res2 (raw when it is as
  wide as the FPN, as for R-50; through a 1x1 conv otherwise), and ``res2`` in the bottom-up
  network's outputs; only when DPE reads P_{l-1} (``model.head_extra_features`` hands it to the
  head as ``below``; anchors stay on P3-P7);
* the head: ``model.head.tscode = TaskContextDecoupler(...)``: SCE's shared stride-2 conv, the
  "shallow but wide" classification tower (2 x (2 x head width), i.e. 2 x 512 on R-50) and 4x
  predictor with the 2x2 rearrangement; DPE's shared stride-2 conv; P8 from a conv on ReLU(P7).

The host's assignment, losses and inference are untouched; quality branches stay on the
localization side.
"""
from detectron2.config import LazyCall as L

from ddod.modeling import FPNWithBottomUp, TaskContextDecoupler


def use_tscode(model, *, sce=True, dpe=True, **options):
    """Switch TSCODE's SCE and/or DPE on in ``model`` (a LazyConfig of DDOD); ``options`` go to
    :class:`TaskContextDecoupler` (top, sce_downsample, sce_use_next, sce_conv_dims,
    sce_num_convs, dpe_inputs)."""
    if not (sce or dpe):
        raise ValueError("use_tscode: switch on at least one of sce and dpe.")
    channels = model.backbone.out_channels
    options.setdefault("sce_conv_dims", 2 * model.head.conv_dims)
    model.head.tscode = L(TaskContextDecoupler)(channels=channels, sce=sce, dpe=dpe, **options)
    if dpe and "prev" in options.get("dpe_inputs", ("prev",)):
        model.backbone._target_ = FPNWithBottomUp
        model.backbone.extra_features = ["res2"]
        bottom_up = model.backbone.bottom_up
        bottom_up.out_features = ["res2"] + [f for f in bottom_up.out_features if f != "res2"]
        model.head_extra_features = {"below": "res2"}
    return model
