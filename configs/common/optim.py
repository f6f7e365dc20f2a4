"""Optimizers. ``params.model`` is filled with the built model at run time
(``ddod.engine.Trainer.build_optimizer``).
"""

import torch

from detectron2.config import LazyCall as L
from detectron2.solver.build import get_default_optimizer_params

# lr 0.01 at 16 images per batch, as mmdetection's ATSS/DDOD/FCOS/GFL configs (detectron2's own
# RetinaNet/FCOS configs use 0.01 too; its Faster R-CNN uses 0.02). Scale it linearly with the
# batch size.
SGD = L(torch.optim.SGD)(
    params=L(get_default_optimizer_params)(
        # Norm layers (GN/BN) are not decayed, as in detectron2. mmdetection decays them too
        # (its default norm_decay_mult is 1), so this differs from the DDOD paper's code.
        weight_decay_norm=0.0,
    ),
    lr=0.01,
    momentum=0.9,
    weight_decay=1e-4,
)
