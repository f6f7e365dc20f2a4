"""Figures made of titled image panels, each shown at a fixed scale of its own pixels.

The pictures of the tools (predictions, assignments, dataset browser) are grids of images with a
title above each one. matplotlib draws the titles, legends and vector marks; the axes are placed
by hand so that one image pixel is exactly ``scale`` figure pixels, which keeps small marks (an
anchor centre at stride 8) legible and lets tests find a drawn mark at a known pixel.

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly, not ``pyplot``: no global figure
state and no GUI backend, so it runs in tests and on headless machines.
"""

import math
import os
import textwrap
from typing import List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "panel_figure",
    "show_image",
    "save_figure",
    "picture_path",
    "figure_to_array",
    "data_to_pixel",
]

DPI = 100
GAP_PX = 10  # between panels
TITLE_LINE_PX = 15  # per line of a panel title (9 pt at 100 dpi, plus leading)
SUPTITLE_LINE_PX = 17
LEGEND_PX = 26
MARGIN_PX = 6
TITLE_FONTSIZE = 9
SUPTITLE_FONTSIZE = 10
# Average glyph widths in pixels at those sizes (DejaVu Sans, 100 dpi), to wrap long titles.
TITLE_CHAR_PX = 5.6
SUPTITLE_CHAR_PX = 6.4


def _wrap(text: str, width_px: float, char_px: float) -> str:
    """Wrap each line of ``text`` to the characters that fit in ``width_px``."""
    chars = max(10, int(width_px / char_px))
    return "\n".join(textwrap.fill(line, chars) or line for line in text.split("\n"))


def panel_figure(
    panel_sizes: Sequence[Tuple[int, int]],
    titles: Sequence[str],
    *,
    ncols: Optional[int] = None,
    scale: float = 1.0,
    suptitle: Optional[str] = None,
    legend: bool = False,
) -> Tuple[Figure, List]:
    """A figure with one axes per panel, each ``scale`` figure pixels per image pixel.

    Args:
        panel_sizes: (height, width) in image pixels of each panel.
        titles: one title per panel; may hold several lines ("\\n"); long lines are wrapped.
        ncols: panels per row (default: all in one row).
        scale: figure pixels per image pixel.
        suptitle: a title over the whole figure; may hold several lines.
        legend: reserve a strip at the bottom for ``fig.legend(...)``.

    Returns:
        (figure, axes): the axes in panel order, with their ticks and frames off; draw an image
        into each with :func:`show_image`.
    """
    if len(panel_sizes) != len(titles):
        raise ValueError(f"{len(panel_sizes)} panels but {len(titles)} titles.")
    if not panel_sizes:
        raise ValueError("A figure needs at least one panel.")
    ncols = min(ncols or len(panel_sizes), len(panel_sizes))
    nrows = math.ceil(len(panel_sizes) / ncols)
    titles = [_wrap(t, w * scale, TITLE_CHAR_PX) for t, (_, w) in zip(titles, panel_sizes)]
    title_px = TITLE_LINE_PX * max(t.count("\n") + 1 for t in titles) + 4
    # Each column as wide as its widest panel, each row as tall as its tallest one.
    col_w = [0] * ncols
    row_h = [0] * nrows
    for i, (h, w) in enumerate(panel_sizes):
        col_w[i % ncols] = max(col_w[i % ncols], round(w * scale))
        row_h[i // ncols] = max(row_h[i // ncols], round(h * scale))
    width = sum(col_w) + GAP_PX * (ncols - 1) + 2 * MARGIN_PX
    if suptitle:
        suptitle = _wrap(suptitle, width - 2 * MARGIN_PX, SUPTITLE_CHAR_PX)
    top_px = MARGIN_PX + (SUPTITLE_LINE_PX * (suptitle.count("\n") + 1) + 4 if suptitle else 0)
    bottom_px = MARGIN_PX + (LEGEND_PX if legend else 0)
    height = top_px + sum(row_h) + nrows * title_px + GAP_PX * (nrows - 1) + bottom_px

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    if suptitle:
        fig.text(0.5, 1 - MARGIN_PX / height, suptitle, ha="center", va="top",
                 fontsize=SUPTITLE_FONTSIZE)  # fmt: skip
    axes = []
    for i, ((h, w), title) in enumerate(zip(panel_sizes, titles)):
        row, col = divmod(i, ncols)
        left = MARGIN_PX + sum(col_w[:col]) + GAP_PX * col
        top = top_px + sum(row_h[:row]) + (row + 1) * title_px + GAP_PX * row
        pw, ph = round(w * scale), round(h * scale)
        # figure fractions from the bottom-left corner, as matplotlib wants them
        ax = fig.add_axes([left / width, 1 - (top + ph) / height, pw / width, ph / height])
        ax.set_axis_off()
        ax.set_title(title, fontsize=TITLE_FONTSIZE, pad=3)
        axes.append(ax)
    return fig, axes


def show_image(ax, image: np.ndarray) -> None:
    """Show an (H, W, 3) RGB uint8 image in ``ax`` in detectron2's box coordinates: pixel
    (row i, column j) covers [j, j+1] x [i, i+1], so a box or point drawn in image coordinates
    lands where the model sees it."""
    h, w = image.shape[:2]
    ax.imshow(image, extent=(0, w, h, 0), interpolation="nearest")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render ``fig``; its (H, W, 3) uint8 RGB pixels, those :func:`save_figure` writes."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def data_to_pixel(fig: Figure, ax, x: float, y: float) -> Tuple[int, int]:
    """(row, column) in :func:`figure_to_array`'s pixels of the image point (x, y) of ``ax``."""
    px, py = ax.transData.transform((x, y))
    height = int(round(fig.get_figheight() * fig.dpi))
    return int(height - py), int(px)


def save_figure(fig: Figure, path: str) -> str:
    """Write ``fig`` as a PNG at its own size (creating the directory) and return ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=fig.dpi, facecolor=fig.get_facecolor())
    return path


def picture_path(output_dir: str, index: int, file_name: str) -> str:
    """``<output_dir>/<index>_<image stem>.png``: sorted like the dataset, named like the image."""
    stem = os.path.splitext(os.path.basename(file_name))[0]
    return os.path.join(output_dir, f"{index:04d}_{stem}.png")
