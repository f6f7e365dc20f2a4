from detectron2.utils.registry import Registry

DENSE_HEAD_REGISTRY = Registry("DENSE_HEAD")
DENSE_HEAD_REGISTRY.__doc__ = """
Registry for dense detection heads (detectron2 has none). A registered head is called as
``cls(cfg, input_shape)`` through ``@configurable``, where ``input_shape`` is the list of
``ShapeSpec`` of the FPN levels it runs on.

Output contract (read by the meta-architecture, meta_arch/ddod.py), per-level lists:
``(cls_logits, bbox_deltas, quality_logits[, init_bbox_deltas])``; ``bbox_deltas`` is the box
that is scored and returned, ``quality_logits`` is [] without a quality branch, and the optional
fourth list is the initial box of a head that refines its boxes (VFNetHead), trained by its own
box loss. A fifth list, the per-side box distribution logits (N, 4*(n+1), Hl, Wl) of a head
whose box is the integral of a distribution (GFLHead: then the fourth list is []), is trained
by the detector's ``box_distribution_loss``. Heads that take TSCODE's res2 accept it as the
keyword ``below`` (``DDOD(head_extra_features={"below": "res2"})``). ``num_anchors`` (default 1)
and ``quality`` (None when absent) are read too.
"""


def build_dense_head(cfg, input_shape):
    """Build the head named by ``cfg.MODEL.DDOD.HEAD_NAME``."""
    return DENSE_HEAD_REGISTRY.get(cfg.MODEL.DDOD.HEAD_NAME)(cfg, input_shape)
