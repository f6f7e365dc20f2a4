"""FPN level loss re-weighting ("pyramid supervision disentanglement", paper §3.3, §4.3, §5.4.3).

Most positives of a dense detector fall on the lowest pyramid levels, so their gradients dominate.
:class:`LevelReweighting` multiplies the loss of every anchor on level l by a factor w[l]. The
strategies (``strategy=``), with S[l] the positive count of level l (this batch's, or accumulated
since iteration 0 with ``cumulative=True``) and L the number of levels, l = 0 for P3:

``"none"``
    w[l] = 1 (the baseline; Table 2's "1~1").
``"fixed_linear"``
    w[l] = start + (end - start) * l / (L - 1): fixed factors interpolated linearly by level index
    from P3 to P7, independent of the counts (Table 2: 1~2, 1~3, 2~1, 3~1).
``"linear_reweight"``
    Table 7's Linear-Reweight, "factors that linearly increase from 1.0 to 2.0 are assigned to
    each FPN level" (QueryDet [49]). Our reading, needed to give its "*" (accumulated-count)
    variant a meaning: the levels are ranked by S, most positives first (ties keep level order),
    and the k-th ranked level gets 1 + k / (L - 1). Whenever counts fall from P3 to P7, which is
    the usual case, this is exactly Table 2's fixed 1~2; the paper's Table 7 Linear-Reweight row
    is indeed identical to Table 2's 1~2 row.
``"sum_reweight"``
    Table 7's Sum-Reweight, which the paper defines in one line: "the weight of each FPN layer is
    proportionate to the number of positive samples", motivated by focal loss suppressing the
    negatives (so a level's loss is roughly a sum over its positives). Our reading: each level's
    loss is averaged over its own positives rather than over the whole batch, i.e. the weight is
    *inversely* proportional to the level's count, scaled so that a level holding the average
    count keeps weight 1:

        w[l] = (sum_j S[j] / L) / max(S[l], 1)

    (with every count 0, all factors are 1). Combined with the usual normalisation by the total
    count sum_j S[j], level l's loss becomes loss_l / (L * S[l]): every level gets the same total
    supervision. A level without positives gets sum_j S[j] / L on its (negative-only) loss, which
    the focal loss keeps small; ``max(., 1)`` is the same guard as the loss normaliser's.
``"linear_interpolate"``
    DDOD's FPN hierarchical loss (Eq. 3-4), Table 7's Linear-Interpolate:

        w[l] = 2 - (S[l] - min(S)) / (max(S) - min(S) + 1e-10)

    the level with the most positives gets 1.0, the one with the fewest 2.0, the rest linear in
    the count. Equal counts (including all zeros) give 2.0 everywhere, as in the reference.

Every strategy can be per-batch or cumulative (the paper's "*" rows, "counting all valid samples
till current iteration"), with separate cls/reg counters (the paper and official code) or one
shared counter (``shared_counters=True``, the MMDetection port's behaviour, shared/spec/ddod.md
§6.4), counted locally or summed over processes (``sync``).

Deliberate differences from the reference code (shared/spec/ddod.md §6.3-6.5):

* the counts are registered float64 buffers, so checkpoints carry them and ``--resume``
  continues them; the reference keeps Python lists that restart at zero;
* ``sync=True`` (default) sums each iteration's counts over all processes before accumulating, so
  every rank uses identical factors; ``sync=False`` is the reference's per-process behaviour.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from ...utils.comm import all_reduce_sum

__all__ = [
    "LevelReweighting",
    "REWEIGHT_STRATEGIES",
    "linear_reweight_factors",
    "fixed_linear_factors",
    "rank_linear_factors",
    "sum_reweight_factors",
]

BRANCHES = ("cls", "reg")
REWEIGHT_STRATEGIES = (
    "none",
    "fixed_linear",
    "linear_reweight",
    "sum_reweight",
    "linear_interpolate",
)


def linear_reweight_factors(counts: Tensor, eps: float = 1e-10) -> Tensor:
    """DDOD's Linear-Interpolate factors from per-level positive counts: (L,) -> (L,), in [1, 2].

    Equal counts (including all zeros) give 2.0 everywhere, as in the reference.
    """
    lo, hi = counts.min(), counts.max()
    return 2.0 - (counts - lo) / (hi - lo + eps)


def fixed_linear_factors(num_levels: int, start: float, end: float) -> Tensor:
    """Factors from ``start`` on the first level to ``end`` on the last, linear in the level
    index: (L,) float64. One level gets ``start``."""
    if num_levels == 1:
        return torch.tensor([float(start)], dtype=torch.float64)
    return torch.linspace(float(start), float(end), num_levels, dtype=torch.float64)


def rank_linear_factors(counts: Tensor, start: float = 1.0, end: float = 2.0) -> Tensor:
    """Linear-Reweight: factors ``start`` .. ``end`` assigned by count rank, most positives
    first; ties keep level order. (L,) -> (L,)."""
    steps = fixed_linear_factors(counts.numel(), start, end).to(counts.device, counts.dtype)
    # Stable descending sort: equal counts keep their level order.
    order = torch.sort(counts, descending=True, stable=True).indices
    factors = torch.empty_like(steps)
    factors[order] = steps
    return factors


def sum_reweight_factors(counts: Tensor) -> Tensor:
    """Sum-Reweight: (mean count) / max(count, 1) per level: (L,) -> (L,). All zeros give 1."""
    mean = counts.sum() / counts.numel()
    if mean == 0:
        return torch.ones_like(counts)
    return mean / counts.clamp(min=1)


class LevelReweighting(nn.Module):
    """Per-level loss factors for the cls and reg branches (see the module docstring)."""

    def __init__(
        self,
        num_levels: int,
        *,
        strategy: str = "linear_interpolate",
        cumulative: bool = True,
        shared_counters: bool = False,
        sync: bool = True,
        start: float = 1.0,
        end: float = 2.0,
        enabled: bool = True,
    ):
        """
        Args:
            num_levels: number of FPN levels L.
            strategy: one of :data:`REWEIGHT_STRATEGIES` (module docstring).
            cumulative: the count-based strategies use counts accumulated since iteration 0
                (the reference, the paper's "*"); False uses only the current batch's counts.
            shared_counters: one counter fed by both branches (MMDetection's behaviour).
            sync: sum the counts over processes before accumulating.
            start, end: factors of the first and last level for "fixed_linear" and of the most
                and least populated level for "linear_reweight".
            enabled: False is the same as ``strategy="none"`` (kept for older configs).
        """
        super().__init__()
        if strategy not in REWEIGHT_STRATEGIES:
            raise ValueError(f"strategy must be one of {REWEIGHT_STRATEGIES}, got {strategy!r}.")
        self.num_levels = num_levels
        self.strategy = strategy if enabled else "none"
        self.cumulative = cumulative
        self.shared_counters = shared_counters
        self.sync = sync
        self.start = float(start)
        self.end = float(end)
        # The counters are kept for every strategy (they are also logged), so checkpoints of all
        # strategies have the same keys.
        for branch in BRANCHES:
            self.register_buffer(
                f"{branch}_pos_count", torch.zeros(num_levels, dtype=torch.float64), persistent=True
            )

    @property
    def enabled(self) -> bool:
        return self.strategy != "none"

    def _counter(self, branch: str) -> Tensor:
        if branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES}, got {branch!r}.")
        return getattr(self, "cls_pos_count" if self.shared_counters else f"{branch}_pos_count")

    def factors_from_counts(self, counts: Tensor) -> Tensor:
        """The strategy's factors (L,) float64 for per-level counts (L,) float64."""
        if self.strategy == "none":
            return torch.ones_like(counts)
        if self.strategy == "fixed_linear":
            return fixed_linear_factors(self.num_levels, self.start, self.end).to(counts.device)
        if self.strategy == "linear_reweight":
            return rank_linear_factors(counts, self.start, self.end)
        if self.strategy == "sum_reweight":
            return sum_reweight_factors(counts)
        return linear_reweight_factors(counts)

    @torch.no_grad()
    def forward(self, branch: str, level_pos_counts: Optional[Tensor]) -> Tensor:
        """Accumulate this iteration's counts (in training) and return the factors.

        Args:
            branch: "cls" or "reg".
            level_pos_counts: (L,) number of positive anchors on each level in the local batch.

        Returns:
            (L,) float32 factors, on the counter's device. Outside training the counters are
            left untouched.
        """
        counter = self._counter(branch)
        if level_pos_counts is None:
            level_pos_counts = torch.zeros_like(counter)
        if level_pos_counts.shape != (self.num_levels,):
            raise ValueError(
                f"Expected counts of shape ({self.num_levels},), "
                f"got {tuple(level_pos_counts.shape)}."
            )
        counts = level_pos_counts.to(device=counter.device, dtype=torch.float64)
        if self.sync:
            counts = all_reduce_sum(counts)
        if self.training:
            if self.cumulative:
                counter += counts
            else:
                counter.copy_(counts)
        return self.factors_from_counts(counter).float()

    def extra_repr(self):
        extra = f", start={self.start}, end={self.end}" if self.strategy in (
            "fixed_linear", "linear_reweight") else ""  # fmt: skip
        return (
            f"num_levels={self.num_levels}, strategy={self.strategy!r}{extra}, "
            f"cumulative={self.cumulative}, shared_counters={self.shared_counters}, "
            f"sync={self.sync}"
        )
