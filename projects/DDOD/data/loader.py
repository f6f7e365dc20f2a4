"""A training data loader that resumes exactly where an interrupted run stopped.

detectron2 v0.6's ``build_detection_train_loader`` draws its samples from ``TrainingSampler``, an
endless shuffled stream that restarts from its seed whenever a loader is built. After
``--resume`` the first images of the run are therefore seen again, and the images after the
resume point are never the ones an uninterrupted run would have seen. Its augmentations draw from
the global numpy RNG of whichever process maps the image, seeded per data-loader worker, so they
are not reproduced either.

:func:`build_resumable_train_loader` takes the same arguments and returns batches in the same
format (a list of mapped dicts per process), but every batch is a pure function of
``(seed, iteration)``:

* **Order.** Position ``p`` of the global sample stream is image ``perm_e[p mod N]``, where
  ``perm_e`` is the shuffle of epoch ``e = p div N``, drawn from ``(seed, e)``. Without aspect-ratio
  grouping, iteration ``i`` takes positions ``[i*B, (i+1)*B)`` (``B`` the total batch size) and
  process ``r`` of ``W`` takes its ``B/W`` consecutive share. With grouping, the stream is split
  into "wide" and "tall" buckets (as detectron2 does) and a global batch is emitted when a bucket
  holds ``B`` images; the buckets are replayed from position 0 on indices only, which costs about a
  second for 90k iterations of 16 images. Either way the global batch of an iteration does not
  depend on the number of processes.
* **Augmentations.** The mapper runs with Python's, numpy's and torch's global RNGs seeded from
  ``(seed, position)`` (and restored afterwards), so random flips and crops are the same in every
  run, with or without workers, before and after a resume.
* **Resume.** :class:`ddod.engine.Trainer` calls :meth:`ResumableTrainLoader.set_start_iter` with
  the first iteration after the checkpoint, and saves :meth:`ResumableTrainLoader.state_dict` (the
  seed) in the checkpoint, so a run with a random seed also resumes on the same stream.
* **Unreadable images.** A missing, truncated or corrupt image file raises
  :class:`DatasetImageError`, which names the file. With ``on_bad_image="skip"`` such an image is
  logged and replaced by another image chosen from ``(seed, position)``, so skipping does not make
  the stream depend on timing or workers.
"""

import contextlib
import logging
import random
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.utils.data as torchdata

from detectron2.data.build import trivial_batch_collator, worker_init_reset_seed
from detectron2.data.common import DatasetFromList
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.utils import comm

__all__ = [
    "DatasetImageError",
    "ResumableTrainLoader",
    "TrainingStream",
    "build_resumable_train_loader",
    "build_test_loader",
    "FileNamingMapper",
]

logger = logging.getLogger(__name__)

ON_BAD_IMAGE = ("error", "skip")
# Errors that mean "this image file cannot be read" (what on_bad_image="skip" skips): missing
# files and I/O errors (OSError, which includes PIL's UnidentifiedImageError and "image file is
# truncated"), PIL's SyntaxError for a broken PNG stream, and detectron2's SizeMismatchError for
# an image whose size differs from the annotation. Other errors are bugs and always raise.
_UNREADABLE_IMAGE_ERRORS = (OSError, SyntaxError, SizeMismatchError)


class DatasetImageError(RuntimeError):
    """A training sample could not be loaded. The message names the image file."""


def _describe_record(record, index: Optional[int] = None) -> str:
    """"image 'path' (image_id 7, dataset index 3)", for error messages."""
    where = [] if index is None else [f"dataset index {index}"]
    if isinstance(record, dict) and "file_name" in record:
        if "image_id" in record:
            where.insert(0, f"image_id {record['image_id']}")
        text = f"image '{record['file_name']}'"
        return text + (f" ({', '.join(where)})" if where else "")
    return f"sample {index}" if index is not None else "a sample without 'file_name'"


def _sample_seed(seed: int, position: int, attempt: int = 0) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, position, attempt])


@contextlib.contextmanager
def _seeded_global_rngs(seed: int):
    """Seed Python's, numpy's and torch's global RNGs; restore their previous states on exit."""
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


class TrainingStream:
    """The global sample stream: which images form the batch of each iteration.

    Indices only; nothing is loaded. See the module docstring for the order.
    """

    def __init__(
        self,
        size: int,
        total_batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        group_ids: Optional[Sequence[int]] = None,
    ):
        """
        Args:
            size: number of images N.
            total_batch_size: images per iteration over all processes, B.
            seed: the stream's seed.
            shuffle: shuffle each epoch; False walks the dataset in order.
            group_ids: an int per image (e.g. 0 for wide, 1 for tall): every global batch then
                holds images of one group. None for no grouping.
        """
        if size <= 0:
            raise ValueError("The training dataset is empty.")
        if total_batch_size <= 0:
            raise ValueError(f"total_batch_size must be positive, got {total_batch_size}.")
        self.size = int(size)
        self.total_batch_size = int(total_batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.group_ids = None if group_ids is None else np.asarray(group_ids, dtype=np.int64)
        if self.group_ids is not None and len(self.group_ids) != self.size:
            raise ValueError(f"{len(self.group_ids)} group ids for {self.size} images.")

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The image indices of epoch ``epoch``, in stream order."""
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def _positions(self, start: int) -> Iterator[Tuple[int, int]]:
        """(position, image index) from stream position ``start`` on, forever."""
        epoch = start // self.size
        offset = start % self.size
        while True:
            order = self.epoch_order(epoch)
            base = epoch * self.size
            for k in range(offset, self.size):
                yield base + k, int(order[k])
            epoch += 1
            offset = 0

    def global_batches(self, start_iter: int = 0) -> Iterator[List[Tuple[int, int]]]:
        """The global batch of every iteration from ``start_iter`` on: lists of B
        (image index, stream position) pairs."""
        if start_iter < 0:
            raise ValueError(f"start_iter must be >= 0, got {start_iter}.")
        B = self.total_batch_size
        if self.group_ids is None:
            batch = []
            for position, index in self._positions(start_iter * B):
                batch.append((index, position))
                if len(batch) == B:
                    yield batch
                    batch = []
        else:
            buckets = {}
            num_batches = 0
            for position, index in self._positions(0):
                bucket = buckets.setdefault(int(self.group_ids[index]), [])
                bucket.append((index, position))
                if len(bucket) == B:
                    if num_batches >= start_iter:
                        yield list(bucket)
                    num_batches += 1
                    bucket.clear()


class _StreamBatchSampler(torchdata.Sampler):
    """This process's share of each global batch, as a batch sampler for ``DataLoader``."""

    def __init__(self, stream: TrainingStream, start_iter: int, rank: int, world_size: int):
        self.stream = stream
        self.start_iter = start_iter
        self.rank = rank
        self.world_size = world_size

    def __iter__(self):
        per_process = self.stream.total_batch_size // self.world_size
        lo = self.rank * per_process
        for batch in self.stream.global_batches(self.start_iter):
            yield batch[lo : lo + per_process]


class _SeededMapDataset(torchdata.Dataset):
    """Maps ``(image index, stream position)`` to the mapper's output, with seeded RNGs."""

    def __init__(
        self, dataset, mapper: Callable, *, seed: int, on_bad_image: str, max_attempts: int
    ):
        self.dataset = dataset
        self.mapper = mapper
        self.seed = seed
        self.on_bad_image = on_bad_image
        self.max_attempts = max_attempts
        self._reported = set()

    def __len__(self):
        return len(self.dataset)

    def _describe(self, record, index: int) -> str:
        return _describe_record(record, index)

    def __getitem__(self, item):
        index, position = item
        first_index = index
        failures = []
        for attempt in range(self.max_attempts):
            seed_seq = _sample_seed(self.seed, position, attempt)
            record = self.dataset[index]
            try:
                with _seeded_global_rngs(int(seed_seq.generate_state(1)[0])):
                    mapped = self.mapper(record)
            except _UNREADABLE_IMAGE_ERRORS as e:
                if self.on_bad_image != "skip":
                    raise DatasetImageError(
                        f"Cannot load training {self._describe(record, index)}: "
                        f"{type(e).__name__}: {e}. Fix or remove it, or set "
                        "dataloader.train.on_bad_image=skip to skip unreadable images with a "
                        "warning."
                    ) from e
                failures.append(self._describe(record, index))
                if index not in self._reported:
                    self._reported.add(index)
                    logger.warning(
                        f"Skipping unreadable training {self._describe(record, index)}: "
                        f"{type(e).__name__}: {e} (dataloader.train.on_bad_image=skip)."
                    )
                mapped = None
            except Exception as e:
                raise DatasetImageError(
                    f"Failed to map training {self._describe(record, index)}: "
                    f"{type(e).__name__}: {e}"
                ) from e
            if mapped is not None:
                return mapped
            # The mapper skipped it (returned None) or it was unreadable: another image, chosen
            # from (seed, position, attempt) so that the stream stays reproducible.
            index = int(np.random.default_rng(seed_seq).integers(len(self.dataset)))
        raise DatasetImageError(
            f"Could not load a training sample at stream position {position}: {self.max_attempts} "
            f"images in a row were unreadable or skipped by the mapper, starting with dataset "
            f"index {first_index}. Unreadable: {failures[:5]}. Check the dataset's image files."
        )


class ResumableTrainLoader:
    """Iterable of training batches (per process: a list of mapped dicts) that can be resumed.

    Built by :func:`build_resumable_train_loader`; see the module docstring. Each ``iter()``
    starts at iteration :attr:`start_iter`.
    """

    def __init__(
        self,
        dataset,
        *,
        mapper: Callable,
        total_batch_size: int,
        aspect_ratio_grouping: bool = True,
        num_workers: int = 0,
        seed: Optional[int] = None,
        shuffle: bool = True,
        on_bad_image: str = "error",
        max_attempts: int = 10,
        collate_fn: Optional[Callable] = None,
    ):
        world_size = comm.get_world_size()
        if total_batch_size <= 0 or total_batch_size % world_size != 0:
            raise ValueError(
                f"Total batch size ({total_batch_size}) must be a positive multiple of the number "
                f"of processes ({world_size})."
            )
        if on_bad_image not in ON_BAD_IMAGE:
            raise ValueError(f"on_bad_image must be one of {ON_BAD_IMAGE}, got {on_bad_image!r}.")
        if isinstance(dataset, list):
            group_ids = _aspect_groups(dataset) if aspect_ratio_grouping else None
            dataset = DatasetFromList(dataset, copy=False)
        else:
            if aspect_ratio_grouping:
                raise ValueError(
                    "aspect_ratio_grouping=True needs the dataset as a list of dicts with 'width' "
                    f"and 'height'; got a {type(dataset).__name__}. Pass a list or set "
                    "aspect_ratio_grouping=False."
                )
            group_ids = None
        if seed is None:
            # Same on every process; follows train.seed, which default_setup applied to numpy.
            seed = comm.shared_random_seed()
        self.seed = int(seed)
        self.total_batch_size = int(total_batch_size)
        self.shuffle = shuffle
        self.num_workers = num_workers
        self.collate_fn = collate_fn or trivial_batch_collator
        self.group_ids = group_ids
        self.on_bad_image = on_bad_image
        self.max_attempts = max_attempts
        self._dataset = dataset
        self._mapper = mapper
        self.start_iter = 0

    @property
    def stream(self) -> TrainingStream:
        return TrainingStream(
            len(self._dataset),
            self.total_batch_size,
            seed=self.seed,
            shuffle=self.shuffle,
            group_ids=self.group_ids,
        )

    def set_start_iter(self, start_iter: int) -> None:
        """Make the next ``iter()`` start with the batch of iteration ``start_iter``."""
        self.start_iter = int(start_iter)

    def __iter__(self):
        # A generator: nothing (no worker process) starts before the first batch is requested,
        # so a trainer may call iter() early and again after resuming at no cost.
        sampler = _StreamBatchSampler(
            self.stream, self.start_iter, comm.get_rank(), comm.get_world_size()
        )
        dataset = _SeededMapDataset(
            self._dataset,
            self._mapper,
            seed=self.seed,
            on_bad_image=self.on_bad_image,
            max_attempts=self.max_attempts,
        )
        loader = torchdata.DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            worker_init_fn=worker_init_reset_seed,
            # The DataLoader draws its workers' base seed from this generator, not from the
            # global torch RNG of the training process.
            generator=torch.Generator().manual_seed(self.seed),
        )
        yield from loader

    def state_dict(self):
        """What a checkpoint needs to continue this stream: plain numbers only."""
        return {
            "seed": self.seed,
            "dataset_size": len(self._dataset),
            "total_batch_size": self.total_batch_size,
        }

    def load_state_dict(self, state):
        """Continue the stream of a checkpointed run (its seed), warning about what changed."""
        self.seed = int(state["seed"])
        changes = [
            f"{key} {state[key]} -> {now}"
            for key, now in (
                ("dataset_size", len(self._dataset)),
                ("total_batch_size", self.total_batch_size),
            )
            if key in state and int(state[key]) != now
        ]
        if changes:
            logger.warning(
                "The training data changed since the checkpoint was written ("
                + ", ".join(changes)
                + "): training continues, but not with the images an uninterrupted run would "
                "have seen."
            )


def _aspect_groups(dicts: List[dict]) -> np.ndarray:
    """0 for images wider than tall, 1 otherwise (detectron2's AspectRatioGroupedDataset)."""
    groups = np.empty(len(dicts), dtype=np.int64)
    for i, d in enumerate(dicts):
        try:
            groups[i] = 0 if d["width"] > d["height"] else 1
        except KeyError as e:
            raise ValueError(
                f"aspect_ratio_grouping=True needs 'width' and 'height' in every dataset dict; "
                f"{d.get('file_name', f'dict {i}')!r} has no {e}. Set aspect_ratio_grouping=False."
            ) from None
    return groups


def build_resumable_train_loader(
    dataset,
    *,
    mapper: Callable,
    total_batch_size: int,
    aspect_ratio_grouping: bool = True,
    num_workers: int = 0,
    seed: Optional[int] = None,
    shuffle: bool = True,
    on_bad_image: str = "error",
    collate_fn: Optional[Callable] = None,
) -> ResumableTrainLoader:
    """A drop-in for detectron2's ``build_detection_train_loader`` that resumes exactly.

    Args:
        dataset (list[dict] or torch Dataset): the dataset dicts, e.g. from
            :func:`ddod.data.get_detection_dataset_dicts_checked`.
        mapper: maps a dataset dict to the model's input (e.g. ``DatasetMapper``). It may return
            None to skip a sample; another one is then chosen reproducibly.
        total_batch_size: images per iteration over all processes.
        aspect_ratio_grouping: put only wide or only tall images in each batch (needs a list of
            dicts with width and height).
        num_workers: data-loading worker processes per training process.
        seed: the sample stream's seed; None draws one shared by all processes from numpy's
            global RNG (which ``train.seed`` seeds). Checkpoints store it, so resuming restores it.
        shuffle: shuffle every epoch.
        on_bad_image: "error" (default) raises :class:`DatasetImageError` naming the file of an
            image that cannot be read; "skip" logs it once and uses another image.
        collate_fn: batch collation; default: a list of the mapped dicts.

    Returns:
        ResumableTrainLoader: an endless iterable of per-process batches.
    """
    return ResumableTrainLoader(
        dataset,
        mapper=mapper,
        total_batch_size=total_batch_size,
        aspect_ratio_grouping=aspect_ratio_grouping,
        num_workers=num_workers,
        seed=seed,
        shuffle=shuffle,
        on_bad_image=on_bad_image,
        collate_fn=collate_fn,
    )


class FileNamingMapper:
    """Wraps a dataset mapper so that an unreadable image raises :class:`DatasetImageError`
    naming the file, as the training loader does (detectron2's test loader would raise a bare
    ``OSError`` from PIL that says nothing about which of thousands of images is broken).

    Evaluation has no ``skip`` option on purpose: leaving an image out changes the metric.
    """

    def __init__(self, mapper: Callable, split: str = "test"):
        self.mapper = mapper
        self.split = split

    def __call__(self, record):
        try:
            return self.mapper(record)
        except _UNREADABLE_IMAGE_ERRORS as e:
            raise DatasetImageError(
                f"Cannot load {self.split} {_describe_record(record)}: {type(e).__name__}: {e}. "
                "Fix the file or remove the image from the dataset's json."
            ) from e

    def __repr__(self):
        return f"FileNamingMapper({self.mapper!r})"


def build_test_loader(dataset, *, mapper: Callable, **kwargs):
    """detectron2's ``build_detection_test_loader`` whose unreadable images raise
    :class:`DatasetImageError` naming the file (see :class:`FileNamingMapper`). Same arguments.
    """
    from detectron2.data import build_detection_test_loader

    return build_detection_test_loader(dataset, mapper=FileNamingMapper(mapper), **kwargs)
