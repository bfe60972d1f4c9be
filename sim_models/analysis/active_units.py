"""Per-dimension KL to the prior and active units: which latent dimensions a module actually uses.

For a probabilistic module with posterior N(mu, diag(exp(logvar))) per frame, the KL of one
dimension c to the prior N(0, 1) is (the KL term of the Smooth InfoMax loss, paper §3.2, split by channel)::

    KL_c(x, t) = 1/2 (mu_c^2 + exp(logvar_c) - logvar_c - 1)      [nats]

Two criteria for an *active unit* (a dimension not collapsed to the prior, "posterior collapse"):

* ``"kl"`` (the project's default, and the β search's collapse test): the mean of KL_c over inputs
  and frames exceeds ``threshold`` nats (0.01). A dimension at or below it has a posterior that is
  (nearly) the prior for every input: the paper's "posteriors collapse to N(0, I)" (§4.1.3) holds
  for a module when none of its dimensions is active.
* ``"variance"`` (Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders", §5.2):
  the variance over inputs and frames of the posterior mean mu_c exceeds ``threshold`` (0.01).
  A collapsed unit has mu_c ~ 0 for every input, so both criteria agree on it; they differ for a
  dimension whose mu moves but whose sigma stays near 1, or one with a constant non-zero mu, or one
  whose sigma shrank while mu stays near constant (KL active, Var[mu] not: it carries no information
  about the input). Report both.

Deterministic modules (GIM, CPC) have no posterior: they have no KL and no active-unit count.
"""
from __future__ import annotations

import torch

__all__ = ["ACTIVE_THRESHOLD", "kl_per_dimension", "mean_variance_per_dimension", "active_units"]

ACTIVE_THRESHOLD = 0.01  # nats (KL) or squared units (variance); Burda et al. 2016 use 1e-2


def _check_posterior(mu: torch.Tensor, logvar: torch.Tensor) -> None:
    if not isinstance(mu, torch.Tensor) or not isinstance(logvar, torch.Tensor):
        raise TypeError("mu and logvar must be tensors")
    if mu.shape != logvar.shape or mu.dim() < 2:
        raise ValueError(f"mu and logvar must have one shape (..., C) with at least 2 dims, got "
                         f"{tuple(mu.shape)} and {tuple(logvar.shape)}")


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean KL(N(mu, sigma^2) || N(0, 1)) per channel, in nats.

    mu, logvar: (..., C) float tensors, channels last (e.g. (N, T, C) frames of N utterances).
    Returns (C,) float64: the mean over every leading index of 1/2 (mu^2 + e^logvar - logvar - 1).
    Raises ValueError on mismatched shapes, TypeError on non-tensors.
    """
    _check_posterior(mu, logvar)
    mu64, lv64 = mu.detach().double(), logvar.detach().double()
    kl = 0.5 * (mu64.square() + lv64.exp() - lv64 - 1.0)
    return kl.reshape(-1, kl.shape[-1]).mean(0)


def mean_variance_per_dimension(mu: torch.Tensor) -> torch.Tensor:
    """Variance over inputs and frames of the posterior mean, per channel (Burda et al. 2016's A_u).

    mu: (..., C). Returns (C,) float64 (population variance).
    """
    if not isinstance(mu, torch.Tensor) or mu.dim() < 2:
        raise ValueError(f"mu must be a tensor (..., C) with at least 2 dims, got {getattr(mu, 'shape', mu)}")
    flat = mu.detach().double().reshape(-1, mu.shape[-1])
    return flat.var(0, unbiased=False)


def active_units(mu: torch.Tensor, logvar: torch.Tensor, criterion: str = "kl",
                 threshold: float = ACTIVE_THRESHOLD) -> int:
    """Number of active latent dimensions of a probabilistic module.

    mu, logvar: (..., C) posterior parameters over a data set (channels last).
    criterion: ``"kl"`` (mean KL to the prior > threshold nats) or ``"variance"`` (variance of mu
    over the data > threshold, Burda et al. 2016). Returns an int in [0, C].
    Raises ValueError for an unknown criterion or a negative threshold.
    """
    if criterion not in ("kl", "variance"):
        raise ValueError(f"criterion must be 'kl' or 'variance', got {criterion!r}")
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    score = kl_per_dimension(mu, logvar) if criterion == "kl" else mean_variance_per_dimension(mu)
    return int((score > threshold).sum())
