# MOD (RFA + APS) on ResNet-50-FPN, as the official code trains it (shared/spec/related_methods.md
# §3): FCOS-imprv (./fcos.py, our FCOS*) with
#   * a GIoU quality branch on the regression tower (BCE toward the detached GIoU of the
#     predicted box, clamped to [0, 1]) in place of centerness, and test scores
#     sqrt(sigmoid(cls) * sigmoid(quality));
#   * RFA: the last conv of both towers is a modulated deformable conv (DCNv2) with a bias,
#     then GN and ReLU (the paper puts a plain DCN at the first conv: head.cls_deform_index=0,
#     reg_deform_index=0, deform_modulated=False);
#   * APS in place of FCOS's assignment (APSAssigner: top-9 per level by assignment loss, the
#     two best levels, the code's score, a batched GMM on 10 x S, no fallback);
#   * focal loss with hard targets, GIoU weighted by the centerness target, every loss weight 1.
from detectron2.config import LazyCall as L

from ddod.modeling import APSAssigner

from .fcos import model

model.head.cls_deform_index = -1  # the last tower conv (the code); 0 is the paper's first
model.head.reg_deform_index = -1
model.head.deform_modulated = True
model.head.deform_bias = True
model.cls_assigner = L(APSAssigner)(
    topk=9, num_levels=2, score_mode="code", spatial_selection=True, gmm_scale=10.0,
    fallback=False,
)  # fmt: skip
model.reg_assigner = None
model.quality_target = "giou"
model.test_score_mode = "sqrt_cls_x_quality"
