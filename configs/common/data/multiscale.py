"""Multi-scale training for a COCO data config: the short side of every training image is drawn
uniformly (an integer, inclusive bounds) from a range, the long side capped at ``max_size``;
testing stays at one scale (short side 800, max 1333). mmdetection's
``img_scale=[(1333, lo), (1333, hi)], multiscale_mode="range"`` and maskrcnn-benchmark's
``MIN_SIZE_RANGE_TRAIN=(lo, hi)`` do the same (a uniform short side in [lo, hi], then the long
side capped at 1333)::

    from ..common.data.coco import dataloader
    from ..common.data.multiscale import multiscale_train

    multiscale_train(dataloader, (480, 960))   # VFNet, MOD
    multiscale_train(dataloader, (640, 800))   # ATSS (and DDOD here: its paper gives no range)
"""
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L


def multiscale_train(dataloader, short_edges=(640, 800), max_size=1333):
    """Replace the first training augmentation (the resize) by a ``ResizeShortestEdge`` that
    draws the short side from ``short_edges`` = (lo, hi)."""
    lo, hi = short_edges
    if not 0 < lo <= hi:
        raise ValueError(f"short_edges must be (lo, hi) with 0 < lo <= hi, got {short_edges}.")
    dataloader.train.mapper.augmentations[0] = L(T.ResizeShortestEdge)(
        short_edge_length=[lo, hi], max_size=max_size, sample_style="range"
    )
