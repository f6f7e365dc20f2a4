"""Draw a recorded label assignment (:class:`~ddod.utils.assignments.ImageAssignment`): one panel
per FPN level with the ground truth and the anchor centres that are classification positives,
regression positives, or both, and the per-level counts in the panel titles."""

from typing import Dict, Optional, Sequence

import numpy as np
from matplotlib.collections import EllipseCollection, PolyCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from .assignments import ImageAssignment
from .panels import panel_figure, show_image

__all__ = ["KIND_COLORS", "GT_COLOR", "positive_locations", "assignment_figure"]

# Saturated colours far from each other and from the dimmed image; the tests look for them.
KIND_COLORS = {
    "cls": (1.0, 0.55, 0.0),  # orange: classification positive only
    "reg": (0.0, 0.75, 1.0),  # sky blue: regression positive only
    "both": (1.0, 0.0, 1.0),  # magenta: positive for both branches
}
KIND_LABELS = {"cls": "cls positive only", "reg": "reg positive only", "both": "cls & reg positive"}
GT_COLOR = (0.2, 1.0, 0.2)
# The image is darkened so that the marks stand out on bright images too.
IMAGE_BRIGHTNESS = 0.6
# Marker radius in figure pixels: 0.3 x stride, within these bounds (stride 128 would be huge).
MIN_RADIUS_PX, MAX_RADIUS_PX = 2.5, 6.0


def positive_locations(assignment: ImageAssignment, level: int) -> Dict[str, np.ndarray]:
    """Anchor centres of one level grouped by kind: {"cls", "reg", "both"} -> (P, 2) XY.

    Several anchors can share a centre (e.g. RetinaNet's 9 per location): a centre counts as a
    classification (regression) positive when any of its anchors is one.
    """
    s = assignment.level_slices()[level]
    anchors = assignment.anchors[s]
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    cls, reg = assignment.positives("cls")[s], assignment.positives("reg")[s]
    if len(centres) == 0:
        return {kind: np.zeros((0, 2)) for kind in KIND_COLORS}
    unique, inverse = np.unique(centres.round(3), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    cls_at = np.zeros(len(unique), bool)
    reg_at = np.zeros(len(unique), bool)
    np.logical_or.at(cls_at, inverse, cls)
    np.logical_or.at(reg_at, inverse, reg)
    return {
        "cls": unique[cls_at & ~reg_at],
        "reg": unique[reg_at & ~cls_at],
        "both": unique[cls_at & reg_at],
    }


def _level_title(assignment: ImageAssignment, level: int) -> str:
    name = assignment.level_names[level]
    stride = assignment.level_strides[level]
    counts = assignment.level_counts()[name]
    head = f"{name} (stride {stride})" if stride else name
    return f"{head}\ncls {counts['cls']} · reg {counts['reg']} positives"


def _draw_gt(ax, assignment: ImageAssignment, class_names: Optional[Sequence[str]]):
    for box, cls in zip(assignment.gt_boxes, assignment.gt_classes):
        x0, y0, x1, y1 = box
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=GT_COLOR,
                               linewidth=1.2))  # fmt: skip
        name = class_names[cls] if class_names is not None and cls < len(class_names) else str(cls)
        ax.text(x0, y0, name, color="black", fontsize=7, va="bottom", ha="left",
                bbox=dict(facecolor=GT_COLOR, edgecolor="none", pad=0.5, alpha=0.9))  # fmt: skip


def _draw_anchor_boxes(ax, assignment: ImageAssignment, level: int):
    """Outlines of the positive anchors of a level, in the colour of their kind."""
    s = assignment.level_slices()[level]
    anchors = assignment.anchors[s]
    cls, reg = assignment.positives("cls")[s], assignment.positives("reg")[s]
    for kind, mask in (("cls", cls & ~reg), ("reg", reg & ~cls), ("both", cls & reg)):
        boxes = anchors[mask]
        if len(boxes):
            polys = [[(x0, y0), (x1, y0), (x1, y1), (x0, y1)] for x0, y0, x1, y1 in boxes]
            ax.add_collection(PolyCollection(
                polys, facecolors="none", linewidths=0.6, edgecolors=[KIND_COLORS[kind]], alpha=0.7
            ))  # fmt: skip


def assignment_figure(
    assignment: ImageAssignment,
    *,
    class_names: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    scale: float = 1.0,
    draw_boxes: bool = False,
):
    """One figure for one image: a panel per FPN level, in a row.

    Each panel shows the (darkened) image, the ground-truth boxes with their class names, and a
    disc at each anchor centre of that level that is a positive of the classification
    assignment only (orange), of the regression assignment only (blue) or of both (magenta);
    its title gives the level, its stride and its positive anchor counts per branch.

    Args:
        assignment: what :func:`~ddod.utils.assignments.record_assignments` returned for it.
        class_names: names of the classes, for the GT labels (else indices).
        title: a line over the figure (e.g. the file name and the assigners).
        scale: figure pixels per image pixel.
        draw_boxes: also outline the positive anchors' boxes.

    Returns:
        (figure, axes): the matplotlib figure and its per-level axes.
    """
    num_levels = len(assignment.level_names)
    h, w = assignment.image.shape[:2]
    titles = [_level_title(assignment, level) for level in range(num_levels)]
    fig, axes = panel_figure([(h, w)] * num_levels, titles, scale=scale, suptitle=title,
                             legend=True)  # fmt: skip
    image = (assignment.image.astype(np.float32) * IMAGE_BRIGHTNESS).astype(np.uint8)
    for level, ax in enumerate(axes):
        show_image(ax, image)
        _draw_gt(ax, assignment, class_names)
        if draw_boxes:
            _draw_anchor_boxes(ax, assignment, level)
        stride = assignment.level_strides[level] or 8
        radius_px = float(np.clip(0.3 * stride * scale, MIN_RADIUS_PX, MAX_RADIUS_PX))
        for kind, points in positive_locations(assignment, level).items():
            if len(points):
                diameter = 2 * radius_px / scale  # in image pixels ("xy" units)
                ax.add_collection(EllipseCollection(
                    diameter, diameter, 0.0, units="xy", offsets=points,
                    offset_transform=ax.transData, facecolors=[KIND_COLORS[kind]],
                    edgecolors="black", linewidths=0.4,
                ))  # fmt: skip
    handles = [Patch(facecolor="none", edgecolor=GT_COLOR, label="ground truth")]
    handles += [
        Line2D([], [], marker="o", linestyle="none", markerfacecolor=KIND_COLORS[k],
               markeredgecolor="black", markersize=7, label=KIND_LABELS[k])  # fmt: skip
        for k in KIND_COLORS
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
               fontsize=8, borderaxespad=0.3)  # fmt: skip
    return fig, axes
