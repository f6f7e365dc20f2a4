"""The resumable training loader (ddod.data.build_resumable_train_loader): every batch, random
augmentations included, is a function of (seed, iteration), so a resumed run sees the images an
uninterrupted run sees; and the Trainer repositions it and checkpoints its seed."""
import random

import numpy as np
import pytest
import torch

import ddod  # noqa: F401
import detectron2.data.transforms as T
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.data.samplers import TrainingSampler

from ddod.data import (
    ResumableTrainLoader,
    TrainingStream,
    build_resumable_train_loader,
    ensure_digits_split,
    register_digits_dataset,
)
from ddod.data.loader import _StreamBatchSampler


@pytest.fixture(scope="module")
def digits_dicts(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("digits"))
    name = "resume_loader_digits"
    if name not in DatasetCatalog.list():
        register_digits_dataset(name, split="train", num_images=6, root=root, image_size=64,
                                min_size=8, max_size=32)  # fmt: skip
    return DatasetCatalog.get(name)


def flip_mapper():
    return DatasetMapper(
        is_train=True,
        augmentations=[T.RandomFlip(horizontal=True)],
        image_format="BGR",
        use_instance_mask=False,
    )


def take(iterable, n):
    out = []
    for batch in iterable:
        out.append(batch)
        if len(out) == n:
            return out
    return out


def flat(batch):
    """A comparable view of a batch: (image_id, image tensor, boxes) per image."""
    return [(d["image_id"], d["image"], d["instances"].gt_boxes.tensor) for d in batch]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        x, y = flat(x), flat(y)
        assert [i for i, _, _ in x] == [i for i, _, _ in y]
        for (_, im1, bx1), (_, im2, bx2) in zip(x, y):
            assert torch.equal(im1, im2) and torch.equal(bx1, bx2)


@pytest.mark.parametrize("grouping", [False, True])
def test_stream_resumes_at_any_iteration(grouping):
    size, batch = 13, 4  # not a multiple: batches straddle epochs
    groups = np.random.RandomState(0).randint(0, 2, size) if grouping else None
    stream = TrainingStream(size, batch, seed=5, group_ids=groups)
    full = take(stream.global_batches(0), 20)
    for start in (1, 3, 7, 19):
        assert take(stream.global_batches(start), 20 - start) == full[start:]
    # Every epoch visits every image once (positions p in [e*N, (e+1)*N)).
    positions = sorted(p for b in full for _, p in b)
    assert len(set(positions)) == len(positions)
    by_epoch = {}
    for b in full:
        for index, position in b:
            by_epoch.setdefault(position // size, []).append(index)
    assert sorted(by_epoch[0]) == list(range(size)) and sorted(by_epoch[1]) == list(range(size))
    if grouping:
        for b in full:
            assert len({int(groups[i]) for i, _ in b}) == 1  # one aspect group per batch
    # Another seed, another order; the order does not depend on anything else.
    other = take(TrainingStream(size, batch, seed=6, group_ids=groups).global_batches(0), 20)
    assert other != full


def test_processes_split_the_global_batch():
    stream = TrainingStream(10, 4, seed=1)
    global_batches = take(stream.global_batches(2), 5)
    ranks = [take(_StreamBatchSampler(stream, 2, rank, 2), 5) for rank in range(2)]
    for i, batch in enumerate(global_batches):
        assert ranks[0][i] + ranks[1][i] == batch
    # What this replaces: a rebuilt detectron2 TrainingSampler (as after a resume) starts its
    # stream again instead of continuing it.
    first_run = take(iter(TrainingSampler(10, seed=1, shuffle=True)), 16)
    after_resume = take(iter(TrainingSampler(10, seed=1, shuffle=True)), 8)
    assert after_resume == first_run[:8] != first_run[8:]


def test_loader_resumes_batches_and_random_flips(digits_dicts):
    def loader(**kwargs):
        return build_resumable_train_loader(
            digits_dicts, mapper=flip_mapper(), total_batch_size=2, seed=11, **kwargs
        )

    full = take(loader(), 6)
    resumed = loader()
    resumed.set_start_iter(3)
    assert_same_batches(take(resumed, 3), full[3:])

    # The flips are random (some images flipped, some not), but reproducible.
    plain = {
        d["image_id"]: d["image"]
        for d in take(
            build_resumable_train_loader(
                digits_dicts,
                mapper=DatasetMapper(is_train=True, augmentations=[], image_format="BGR"),
                total_batch_size=6,
                seed=11,
                aspect_ratio_grouping=False,
            ),
            1,
        )[0]
    }
    flipped = [not torch.equal(d["image"], plain[d["image_id"]]) for b in full for d in b]
    assert any(flipped) and not all(flipped)

    # Worker processes give the same batches (the RNGs are seeded per sample, not per worker).
    assert_same_batches(take(loader(num_workers=2), 4), full[:4])


def test_loading_leaves_the_global_rngs_alone(digits_dicts):
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    take(build_resumable_train_loader(digits_dicts, mapper=flip_mapper(), total_batch_size=2,
                                      seed=1), 2)  # fmt: skip
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]


def test_state_dict_restores_the_seed(digits_dicts):
    from .test_reliability import LogCapture

    a = build_resumable_train_loader(digits_dicts, mapper=flip_mapper(), total_batch_size=2)
    b = build_resumable_train_loader(digits_dicts, mapper=flip_mapper(), total_batch_size=2)
    b.load_state_dict(a.state_dict())
    assert b.seed == a.seed
    assert_same_batches(take(b, 2), take(a, 2))
    # A changed dataset is reported (the stream cannot be the original one any more).
    c = build_resumable_train_loader(digits_dicts[:4], mapper=flip_mapper(), total_batch_size=2)
    with LogCapture("ddod.data") as log:
        c.load_state_dict(a.state_dict())
    assert "dataset_size 6 -> 4" in log.text


def test_invalid_arguments(digits_dicts):
    with pytest.raises(ValueError, match="on_bad_image"):
        ResumableTrainLoader(digits_dicts, mapper=flip_mapper(), total_batch_size=2,
                             on_bad_image="ignore")  # fmt: skip
    with pytest.raises(ValueError, match="'width' and 'height'"):
        dicts = [dict(d) for d in digits_dicts]
        del dicts[2]["width"]
        ResumableTrainLoader(dicts, mapper=flip_mapper(), total_batch_size=2)
