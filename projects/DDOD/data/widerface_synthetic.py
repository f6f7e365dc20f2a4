"""A small synthetic dataset in WIDER FACE's exact release layout, for tests and CPU smoke runs.

:func:`write_widerface_eval_gt` writes the evaluation kit's ``.mat`` files (scipy's ``savemat``,
with the kit's nested cell arrays) for any ground truth; :func:`write_synthetic_widerface` draws
images with "faces" (skin-coloured ellipses with two eyes) and writes every file of the layout of
``ddod.data.widerface``: images, ``wider_face_{train,val}_bbx_gt.txt`` and the val ``.mat`` files.

The synthetic subsets mimic the real ones' nesting, not their definition (WIDER FACE's come from
EdgeBox detection rates): hard = every valid face, medium = valid faces of at least 10 px without
heavy occlusion, easy = valid faces of at least 16 px, not heavily blurred and not occluded.
"""
import os
from typing import Dict, Sequence

import numpy as np
from PIL import Image, ImageDraw

from .widerface import WIDERFACE_SUBSETS, widerface_paths

__all__ = ["write_widerface_eval_gt", "write_synthetic_widerface", "synthetic_subsets"]


def _cells(items) -> np.ndarray:
    """A (n, 1) MATLAB cell array (numpy object array) of ``items``."""
    cells = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        cells[i, 0] = item
    return cells


def write_widerface_eval_gt(
    gt_mat_dir: str,
    boxes: Dict[str, np.ndarray],
    subsets: Dict[str, Dict[str, Sequence[int]]],
) -> None:
    """Write ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``.

    Args:
        boxes: {"<event>/<name>": (n, 4) x y w h}, in the order the images should be listed.
        subsets: {"easy"|"medium"|"hard": {"<event>/<name>": 0-based face indices}}; an image
            missing from a subset has no face in it.
    """
    from scipy.io import savemat

    os.makedirs(gt_mat_dir, exist_ok=True)
    events = []
    for key in boxes:
        event = key.split("/")[0]
        if event not in events:
            events.append(event)
    per_event = {e: [k for k in boxes if k.split("/")[0] == e] for e in events}
    names = _cells([_cells([k.split("/", 1)[1] for k in per_event[e]]) for e in events])
    face_boxes = _cells(
        [
            _cells([np.asarray(boxes[k], dtype=np.float64).reshape(-1, 4) for k in per_event[e]])
            for e in events
        ]
    )
    event_cells = _cells(events)
    savemat(
        os.path.join(gt_mat_dir, "wider_face_val.mat"),
        {"event_list": event_cells, "file_list": names, "face_bbx_list": face_boxes},
    )
    for subset in WIDERFACE_SUBSETS:
        chosen = subsets.get(subset, {})
        gt_list = _cells(
            [
                _cells(
                    [
                        # the kit stores 1-based indices as a column
                        np.asarray(chosen.get(k, []), dtype=np.float64).reshape(-1, 1) + 1
                        for k in per_event[e]
                    ]
                )
                for e in events
            ]
        )
        savemat(
            os.path.join(gt_mat_dir, f"wider_{subset}_val.mat"),
            {"event_list": event_cells, "file_list": names, "face_bbx_list": face_boxes,
             "gt_list": gt_list},
        )  # fmt: skip


def synthetic_subsets(faces: np.ndarray) -> Dict[str, np.ndarray]:
    """0-based indices of the faces of each subset, from (n, 10) rows of a bbx_gt file."""
    w, h = faces[:, 2], faces[:, 3]
    blur, invalid, occlusion = faces[:, 4], faces[:, 7], faces[:, 8]
    size = np.minimum(w, h)
    valid = invalid == 0
    hard = valid
    medium = valid & (size >= 10) & (occlusion < 2)
    easy = valid & (size >= 16) & (blur < 2) & (occlusion == 0)
    return {
        "easy": np.nonzero(easy)[0],
        "medium": np.nonzero(medium)[0],
        "hard": np.nonzero(hard)[0],
    }


def _draw_image(rng: np.random.Generator, height: int, width: int):
    """An image and its (n, 10) face rows (x y w h blur expression illumination invalid
    occlusion pose); faces do not overlap."""
    image = Image.fromarray(
        rng.integers(40, 90, size=(height, width, 3), dtype=np.uint8), mode="RGB"
    )
    draw = ImageDraw.Draw(image)
    rows = []
    for _ in range(int(rng.integers(1, 5))):
        size = float(np.exp(rng.uniform(np.log(8), np.log(min(height, width) / 2))))
        w, h = round(size), round(size * 1.3)
        if h >= height or w >= width:
            continue
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        if any(x < r[0] + r[2] and r[0] < x + w and y < r[1] + r[3] and r[1] < y + h for r in rows):
            continue
        skin = tuple(int(c) for c in rng.integers([180, 120, 90], [240, 180, 150]))
        draw.ellipse([x, y, x + w - 1, y + h - 1], fill=skin)
        eye = max(1, w // 8)
        for ex in (x + w // 3, x + 2 * w // 3):
            eye_box = [ex - eye, y + h // 3 - eye, ex + eye, y + h // 3 + eye]
            draw.ellipse(eye_box, fill=(20, 20, 20))
        blur, occlusion = (int(rng.choice([0, 0, 0, 1, 2])) for _ in range(2))
        invalid = int(rng.random() < 0.1)
        rows.append([x, y, w, h, blur, 0, 0, invalid, occlusion, 0])
    return image, np.asarray(rows, dtype=np.float64).reshape(-1, 10)


def write_synthetic_widerface(
    root: str,
    *,
    num_train: int = 16,
    num_val: int = 8,
    image_size=(128, 160),
    events: Sequence[str] = ("0--Parade", "1--Handshaking"),
    seed: int = 0,
) -> Dict[str, Dict[str, str]]:
    """Write a synthetic WIDER FACE under ``root``; the last training image has no face.

    Returns:
        {"train": widerface_paths(root, "train"), "val": widerface_paths(root, "val")}.
    """
    rng = np.random.default_rng(seed)
    height, width = image_size
    out = {}
    for split, count in (("train", num_train), ("val", num_val)):
        paths = widerface_paths(root, split)
        lines, all_boxes, subsets = [], {}, {s: {} for s in WIDERFACE_SUBSETS}
        for i in range(count):
            event = events[i % len(events)]
            name = f"{event.split('--')[0]}_{event.split('--')[1]}_synthetic_{i}"
            image, faces = _draw_image(rng, height, width)
            if split == "train" and i == count - 1:
                image, faces = Image.new("RGB", (width, height), (60, 60, 60)), faces[:0]
            os.makedirs(os.path.join(paths["image_root"], event), exist_ok=True)
            image.save(os.path.join(paths["image_root"], event, name + ".jpg"), quality=95)
            lines.append(f"{event}/{name}.jpg")
            lines.append(str(len(faces)))
            for row in faces if len(faces) else np.zeros((1, 10)):
                lines.append(" ".join(str(int(v)) for v in row) + " ")
            key = f"{event}/{name}"
            all_boxes[key] = faces[:, :4]
            for subset, index in synthetic_subsets(faces).items():
                subsets[subset][key] = index
        os.makedirs(os.path.dirname(paths["gt_txt"]), exist_ok=True)
        with open(paths["gt_txt"], "w") as f:
            f.write("\n".join(lines) + "\n")
        if split == "val":
            write_widerface_eval_gt(paths["gt_mat_dir"], all_boxes, subsets)
        out[split] = paths
    return out
