from detectron2.utils.registry import Registry

DENSE_HEAD_REGISTRY = Registry("DENSE_HEAD")
DENSE_HEAD_REGISTRY.__doc__ = """
Registry for dense detection heads (detectron2 has none). A registered head is called as
``cls(cfg, input_shape)`` through ``@configurable``, where ``input_shape`` is the list of
``ShapeSpec`` of the FPN levels it runs on.
"""


def build_dense_head(cfg, input_shape):
    """Build the head named by ``cfg.MODEL.DDOD.HEAD_NAME``."""
    return DENSE_HEAD_REGISTRY.get(cfg.MODEL.DDOD.HEAD_NAME)(cfg, input_shape)
