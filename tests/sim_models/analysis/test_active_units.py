import math

import pytest
import torch

from sim_models.analysis.active_units import active_units, kl_per_dimension, mean_variance_per_dimension


def test_kl_per_dimension_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 7, 5, generator=g), torch.randn(4, 7, 5, generator=g)
    dist = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(dist, prior).double().reshape(-1, 5).mean(0)
    torch.testing.assert_close(kl_per_dimension(mu, logvar), expected, rtol=1e-6, atol=1e-9)


def test_collapsed_dimensions_are_inactive_under_both_criteria():
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(50, 10, 6, generator=g)
    logvar = torch.full_like(mu, -2.0)
    mu[..., :2] = 0.0      # collapsed to the prior: mu = 0, sigma = 1
    logvar[..., :2] = 0.0
    assert kl_per_dimension(mu, logvar)[:2].abs().max() == 0
    assert active_units(mu, logvar, "kl") == 4
    assert active_units(mu, logvar, "variance") == 4


def test_criteria_differ_on_a_constant_mean():
    mu = torch.full((20, 3, 2), 1.0)
    logvar = torch.zeros_like(mu)
    # KL = 1/2 per dim (mu = 1), but mu never varies: active by KL, inactive by Burda's variance.
    assert math.isclose(float(kl_per_dimension(mu, logvar)[0]), 0.5)
    assert active_units(mu, logvar, "kl") == 2
    assert active_units(mu, logvar, "variance") == 0
    assert float(mean_variance_per_dimension(mu).max()) == 0.0


@pytest.mark.parametrize("kwargs, match", [({"criterion": "mutual"}, "criterion"),
                                           ({"threshold": -1.0}, "threshold")])
def test_bad_arguments_are_named(kwargs, match):
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=match):
        active_units(x, x, **kwargs)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="mu and logvar"):
        kl_per_dimension(torch.zeros(2, 3, 4), torch.zeros(2, 3, 5))
