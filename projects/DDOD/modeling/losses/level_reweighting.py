"""DDOD's FPN level loss re-weighting ("pyramid supervision disentanglement", paper §4.3).

Most positives of a dense detector fall on the lowest pyramid levels, so their gradients dominate.
DDOD keeps, per branch (classification, regression), a running count of positive anchors on each
level and multiplies the loss of level l by

    w[l] = 2 - (S[l] - min(S)) / (max(S) - min(S) + 1e-10)

so the level with the most accumulated positives gets 1.0 and the one with the fewest gets 2.0.

Deliberate differences from the reference code (shared/spec/ddod.md §6.3-6.5), each switchable:

* the counts are registered buffers (float64), so checkpoints carry them and ``--resume``
  continues them; the reference keeps Python lists that restart at zero;
* ``sync=True`` (default) sums each iteration's counts over all processes before accumulating, so
  every rank uses identical factors; ``sync=False`` is the reference's per-process behaviour;
* ``shared_counters=True`` reproduces the MMDetection port, where both branches accumulate into
  one counter; the default (separate counters) is the paper's and the official code's.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from ...utils.comm import all_reduce_sum

__all__ = ["LevelReweighting", "linear_reweight_factors"]

BRANCHES = ("cls", "reg")


def linear_reweight_factors(counts: Tensor, eps: float = 1e-10) -> Tensor:
    """DDOD's factors from per-level positive counts: (L,) -> (L,), in [1, 2].

    Equal counts (including all zeros) give 2.0 everywhere, as in the reference.
    """
    lo, hi = counts.min(), counts.max()
    return 2.0 - (counts - lo) / (hi - lo + eps)


class LevelReweighting(nn.Module):
    """Per-level loss factors from accumulated positive counts, for the cls and reg branches."""

    def __init__(
        self,
        num_levels: int,
        *,
        enabled: bool = True,
        cumulative: bool = True,
        shared_counters: bool = False,
        sync: bool = True,
    ):
        """
        Args:
            num_levels: number of FPN levels L.
            enabled: False gives factors of 1.0 everywhere (no re-weighting).
            cumulative: accumulate counts since iteration 0 (the reference); False uses only
                the current batch's counts.
            shared_counters: one counter fed by both branches (MMDetection's behaviour).
            sync: sum the counts over processes before accumulating.
        """
        super().__init__()
        self.num_levels = num_levels
        self.enabled = enabled
        self.cumulative = cumulative
        self.shared_counters = shared_counters
        self.sync = sync
        for branch in BRANCHES:
            self.register_buffer(
                f"{branch}_pos_count", torch.zeros(num_levels, dtype=torch.float64), persistent=True
            )

    def _counter(self, branch: str) -> Tensor:
        if branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES}, got {branch!r}.")
        return getattr(self, "cls_pos_count" if self.shared_counters else f"{branch}_pos_count")

    @torch.no_grad()
    def forward(self, branch: str, level_pos_counts: Optional[Tensor]) -> Tensor:
        """Accumulate this iteration's counts (in training) and return the factors.

        Args:
            branch: "cls" or "reg".
            level_pos_counts: (L,) number of positive anchors on each level in the local batch.

        Returns:
            (L,) float32 factors, on the counts' device. Outside training the counters are left
            untouched.
        """
        counter = self._counter(branch)
        if not self.enabled:
            return torch.ones(self.num_levels, device=counter.device)
        if level_pos_counts.shape != (self.num_levels,):
            raise ValueError(
                f"Expected counts of shape ({self.num_levels},), got {tuple(level_pos_counts.shape)}."
            )
        counts = level_pos_counts.to(device=counter.device, dtype=torch.float64)
        if self.sync:
            counts = all_reduce_sum(counts)
        if self.training:
            if self.cumulative:
                counter += counts
            else:
                counter.copy_(counts)
        return linear_reweight_factors(counter).float()

    def extra_repr(self):
        return (
            f"num_levels={self.num_levels}, enabled={self.enabled}, cumulative={self.cumulative}, "
            f"shared_counters={self.shared_counters}, sync={self.sync}"
        )
