"""Learning-rate multiplier schedules (the ``lr_multiplier`` key).

detectron2's schedules are functions of training *progress* in [0, 1]: ``LRMultiplier`` evaluates
them at ``iteration / train.max_iter``. So ``lr_multiplier_1x`` used with ``train.max_iter=900``
still decays at 2/3 and 8/9 of the run, but its warm-up lasts 1000/90000 of the run (10
iterations). Use :func:`multistep_schedule` to get a warm-up of a given number of iterations.
"""

from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    CosineParamScheduler,
    MultiStepParamScheduler,
)

from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler


def with_warmup(schedule, max_iter, warmup_iters, warmup_factor):
    """``schedule`` behind a linear warm-up of ``warmup_iters`` (capped at ``max_iter``); the
    schedule itself when ``warmup_iters <= 0``."""
    if warmup_iters <= 0:
        return schedule
    return L(WarmupParamScheduler)(
        scheduler=schedule,
        warmup_length=min(warmup_iters / max_iter, 1.0),
        warmup_factor=warmup_factor,
    )


def multistep_schedule(
    max_iter,
    *,
    warmup_iters=1000,
    warmup_factor=0.001,
    steps=(2 / 3, 8 / 9),
    gamma=0.1,
):
    """detectron2's step schedule for a run of ``max_iter`` iterations.

    Args:
        max_iter (int): the length of the run (``train.max_iter``).
        warmup_iters (int): linear warm-up length in iterations (capped at ``max_iter``).
        warmup_factor (float): the multiplier at iteration 0 of the warm-up.
        steps (tuple[float]): when to multiply the LR by ``gamma``, as fractions of the run.
            The default (2/3, 8/9) gives detectron2's 60k/80k of 90k.
        gamma (float): the decay factor at each step.

    Returns:
        a LazyCall of ``WarmupParamScheduler(MultiStepParamScheduler(...))``. Steps that fall on
        the same iteration, on 0 or on ``max_iter`` (short runs) are dropped.
    """
    milestones = sorted({int(round(max_iter * s)) for s in steps} - {0})
    milestones = [m for m in milestones if m < max_iter]
    schedule = L(MultiStepParamScheduler)(
        # "%.12g": 0.1 ** 2 is saved to config.yaml as 0.01, not as 0.010000000000000002
        values=[float("%.12g" % gamma**i) for i in range(len(milestones) + 1)],
        milestones=milestones,
        num_updates=max_iter,
    )
    return with_warmup(schedule, max_iter, warmup_iters, warmup_factor)


def cosine_restarts_schedule(
    max_iter, *, cycles, end_factor, warmup_iters=500, warmup_factor=0.001
):
    """Cosine annealing with warm restarts (SGDR without cycle growth): ``cycles`` equal cycles,
    each annealing the multiplier from 1 to ``end_factor`` by a half cosine.

    DDOD-Face: 600 epochs in 20 cycles of 30, lr 7.5e-3 -> 7.5e-5, i.e. ``cycles=20,
    end_factor=0.01`` with ``optimizer.lr=7.5e-3``.

    Args:
        max_iter (int): the length of the run (``train.max_iter``).
        cycles (int): number of equal cycles.
        end_factor (float): the multiplier at the end of each cycle.
        warmup_iters (int): linear warm-up at the start of the run, in iterations (0: none).
        warmup_factor (float): the multiplier at iteration 0 of the warm-up.

    Returns:
        a LazyCall of fvcore's ``CompositeParamScheduler`` of ``CosineParamScheduler`` cycles,
        inside ``WarmupParamScheduler`` when ``warmup_iters > 0``.
    """
    if cycles < 1:
        raise ValueError(f"cycles must be at least 1, got {cycles}.")
    schedule = L(CompositeParamScheduler)(
        schedulers=[
            L(CosineParamScheduler)(start_value=1.0, end_value=end_factor) for _ in range(cycles)
        ],
        lengths=[1.0 / cycles] * cycles,
        interval_scaling=["rescaled"] * cycles,
    )
    return with_warmup(schedule, max_iter, warmup_iters, warmup_factor)


# 1x = 90k iterations at batch 16 (~12 COCO epochs): x0.1 at 60k and 80k, 1k warm-up from 0.001.
lr_multiplier_1x = multistep_schedule(90000)
# 2x = 180k iterations: x0.1 at 120k and 160k.
lr_multiplier_2x = multistep_schedule(180000)

