"""A batched two-component 1-D Gaussian mixture, fitted by EM in torch.

MOD's aligned points sampler splits each object's candidate scores into two Gaussians and keeps
the low one. The reference fits one scikit-learn ``GaussianMixture(2)`` per object on the CPU;
this module fits all objects of a batch at once, on the scores' device, with the same model and
the same initialisation, so that the two agree (tests/test_mod.py compares them):

* means at (min, max) of each set, weights (0.5, 0.5), variances ``init_var`` (10: the
  reference's precisions of 0.1);
* EM as scikit-learn's "full" covariance M-step in one dimension: ``nk = sum(resp) + 10 * eps``,
  ``var = sum(resp * (x - mean)^2) / nk + reg_covar``;
* stop a set when its mean log-likelihood changed by less than ``tol`` (or at ``max_iter``);
  a stopped set keeps its parameters while the others go on, as separate fits would.

Sets are padded to a common length; padded entries take no part (zero responsibility).
"""
import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["GMMFit", "fit_gmm2_1d"]

_LOG_2PI = math.log(2 * math.pi)


class GMMFit(NamedTuple):
    """A fitted mixture per set. means, variances, weights: (G, 2); converged: (G,) bool;
    n_iter: the number of EM iterations run for the slowest set (a Python int)."""

    means: Tensor
    variances: Tensor
    weights: Tensor
    converged: Tensor
    n_iter: int

    def weighted_log_prob(self, x: Tensor) -> Tensor:
        """(G, C) values -> (G, C, 2): log(weight_k) + log N(x | mean_k, var_k)."""
        var = self.variances[:, None, :]
        log_gauss = -0.5 * (_LOG_2PI + var.log() + (x[..., None] - self.means[:, None, :]) ** 2 / var)
        return log_gauss + self.weights.log()[:, None, :]

    def predict(self, x: Tensor) -> Tensor:
        """(G, C) -> (G, C) int64: the most likely component (0 on ties, like numpy's argmax)."""
        return self.weighted_log_prob(x).argmax(-1)

    def score_samples(self, x: Tensor) -> Tensor:
        """(G, C) -> (G, C): the mixture log-likelihood of each value."""
        return self.weighted_log_prob(x).logsumexp(-1)


def fit_gmm2_1d(
    x: Tensor,
    mask: Tensor,
    *,
    init_var: float = 10.0,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
) -> GMMFit:
    """Fit a two-component Gaussian mixture to each row of ``x``.

    Args:
        x: (G, C) values, float; G sets of at most C values.
        mask: (G, C) bool, the real (non-padding) values of each set. A set with fewer than two
            values is fitted anyway (scikit-learn would refuse it); callers decide for those.
        init_var: initial variance of both components.
        max_iter, tol, reg_covar: as scikit-learn's ``GaussianMixture``.

    Returns:
        a :class:`GMMFit`. Component 0 starts at each set's minimum, component 1 at its maximum.
    """
    if x.dim() != 2 or mask.shape != x.shape:
        raise ValueError(f"x and mask must be (G, C) of the same shape, got {x.shape}, {mask.shape}.")
    # float64: EM on near-degenerate sets (variances ~1e-6) is fragile in fp32, and the sets are
    # small (C ~ 18), so the cost is nothing next to the detector.
    x = x.detach().to(torch.float64)
    maskf = mask.to(x.dtype)
    big = torch.finfo(x.dtype).max
    lo = torch.where(mask, x, x.new_full((), big)).min(1).values
    hi = torch.where(mask, x, x.new_full((), -big)).max(1).values
    g = x.shape[0]
    means = torch.stack([lo, hi], 1)
    variances = x.new_full((g, 2), init_var)
    weights = x.new_full((g, 2), 0.5)
    n = maskf.sum(1).clamp(min=1)  # set sizes
    x0 = torch.where(mask, x, torch.zeros_like(x))  # padding must not make NaNs
    eps10 = 10 * torch.finfo(x.dtype).eps
    converged = torch.zeros(g, dtype=torch.bool, device=x.device)
    lower_bound = x.new_full((g,), -math.inf)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        fit = GMMFit(means, variances, weights, converged, n_iter)
        # E-step
        wlp = fit.weighted_log_prob(x0)  # (G, C, 2)
        log_norm = wlp.logsumexp(-1)  # (G, C)
        resp = (wlp - log_norm[..., None]).exp() * maskf[..., None]
        new_bound = (log_norm * maskf).sum(1) / n
        # M-step
        nk = resp.sum(1) + eps10  # (G, 2)
        new_means = (resp * x0[..., None]).sum(1) / nk
        new_var = (resp * (x0[..., None] - new_means[:, None, :]) ** 2).sum(1) / nk + reg_covar
        new_weights = nk / nk.sum(1, keepdim=True)  # scikit-learn renormalises (the eps)
        # sets that had converged before this iteration keep their parameters
        active = ~converged
        a = active[:, None]
        means = torch.where(a, new_means, means)
        variances = torch.where(a, new_var, variances)
        weights = torch.where(a, new_weights, weights)
        change = (new_bound - lower_bound).abs()
        lower_bound = torch.where(active, new_bound, lower_bound)
        converged = converged | (active & (change < tol))
        if bool(converged.all()):
            break
    return GMMFit(means, variances, weights, converged, n_iter)
