"""The mixture-prior VAE: its log-density against scipy, gradients, the Monte Carlo KL, training."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal, norm

from tests.strategies import seeds
from vae_numpy.data import load_dataset
from vae_numpy.evaluate import iwae_log_likelihood
from vae_numpy.gmvae import GaussianMixtureVAE, mixture_log_density, mixture_log_density_grad
from vae_numpy.gradcheck import check_model, numerical_gradient
from vae_numpy.kl import kl_standard_normal


def _random_prior(rng, k, d):
    return rng.normal(0, 1.5, (k, d)), rng.normal(0, 0.7, (k, d))


@settings(max_examples=30)
@given(seeds, st.integers(1, 6), st.integers(1, 4))
def test_mixture_log_density_matches_scipy(seed, k, d):
    """ln p(z) equals ln of the average of scipy's multivariate normal densities, summed explicitly."""
    rng = np.random.default_rng(seed)
    means, log_vars = _random_prior(rng, k, d)
    z = rng.normal(0, 2, (5, d))
    densities = [
        multivariate_normal(means[j], np.diag(np.exp(log_vars[j]))).pdf(z).reshape(5)
        for j in range(k)
    ]
    expected = np.log(np.sum(densities, axis=0) / k)
    np.testing.assert_allclose(mixture_log_density(z, means, log_vars), expected, rtol=1e-10)


def test_mixture_log_density_is_stable_far_from_every_component():
    """Far from all components ln p(z) stays finite and equals the nearest one's scipy log-pdf sum."""
    means, log_vars = np.array([[0.0], [1.0]]), np.array([[0.0], [-2.0]])
    z = np.array([[-300.0]])  # each density underflows to 0 in linear space
    expected = np.logaddexp(
        norm(0, 1).logpdf(-300.0), norm(1, np.exp(-1.0)).logpdf(-300.0)
    ) - np.log(2)
    assert mixture_log_density(z, means, log_vars)[0] == pytest.approx(expected, rel=1e-12)


@settings(max_examples=20)
@given(seeds, st.integers(1, 5), st.integers(1, 3))
def test_mixture_log_density_gradients_match_central_differences(seed, k, d):
    """The responsibility-weighted gradients for z, the means and log-variances match differences."""
    rng = np.random.default_rng(seed)
    means, log_vars = _random_prior(rng, k, d)
    z, w = rng.normal(0, 2, (4, d)), rng.random(4)

    def objective(_: np.ndarray) -> float:
        return float(np.dot(w, mixture_log_density(z, means, log_vars)))

    d_z, d_means, d_log_vars = mixture_log_density_grad(z, means, log_vars, w)
    for analytic, array in ((d_z, z), (d_means, means), (d_log_vars, log_vars)):
        np.testing.assert_allclose(analytic, numerical_gradient(objective, array), atol=1e-7)


@settings(max_examples=10)
# beta from a few values: the prior's gradients scale with beta, and a beta of 1e-5 would put
# them at the rounding level of the differences
@given(seeds, st.sampled_from(["elu", "tanh", "softplus"]), st.sampled_from([0.0, 0.3, 1.0, 2.5]))
def test_gmvae_gradients_match_central_differences(seed, activation, beta):
    """Every parameter gradient of the -ELBO estimate (fixed noise), prior included, matches."""
    rng = np.random.default_rng(seed)
    model = GaussianMixtureVAE(
        5, (4,), 2, n_components=3, beta=beta, activation=activation, dtype=np.float64, rng=rng
    )
    model.parameters()["prior.mean"][...] = rng.normal(0, 1, (3, 2))
    model.parameters()["prior.log_var"][...] = rng.normal(0, 0.5, (3, 2))
    x, eps = rng.random((6, 5)), rng.standard_normal((6, 2))
    # fourth-order differences with h = 1e-4: gradients far below the loss stay above rounding
    check_model(model, x, noise=eps, eps=1e-4, order=4).assert_ok(1e-6)


def test_monte_carlo_kl_is_unbiased_for_the_closed_form():
    """With one component N(0, I) the average single-sample KL meets the closed form within 4 SE."""
    rng = np.random.default_rng(0)
    model = GaussianMixtureVAE(5, (4,), 2, n_components=1, dtype=np.float64, rng=0)
    model.parameters()["prior.mean"][...] = 0.0
    x = np.tile(rng.random((1, 5)), (40_000, 1))
    terms = model.loss_terms(model.forward((x,), rng.standard_normal((40_000, 2))))
    mu, log_var = model.encode(x[:1])
    exact = kl_standard_normal(mu, log_var)[0]
    se = terms["kl"].std() / np.sqrt(len(x))
    assert abs(terms["kl"].mean() - exact) < 4 * se


def test_iwae_bound_rises_with_the_number_of_samples():
    """Averaged over test digits, the IWAE estimate with k = 1 is the ELBO and k = 50 is above it."""
    x, _, _ = load_dataset("digits")
    model = GaussianMixtureVAE(64, (32,), 3, n_components=5, rng=0).fit(
        x[:500], epochs=3, batch_size=50, rng=0, progress=False
    )
    test = x[1000:1200]
    k1 = iwae_log_likelihood(model, test, k=1, rng=1)
    k50 = iwae_log_likelihood(model, test, k=50, rng=2)
    eps = np.random.default_rng(3).standard_normal((200, 3), dtype=np.float32)
    elbo = -model.loss_terms(model.forward(model.check_data(test), eps))["loss"]
    # k = 1 and the ELBO estimate draw the same kind of sample: their means agree within noise
    se = np.std(k1 - elbo) / np.sqrt(len(test))
    assert abs(k1.mean() - elbo.mean()) < 4 * se
    assert k50.mean() > k1.mean()


def test_gmvae_trains_on_digits_and_samples_from_its_prior():
    """Training lowers the loss; samples come from the mixture (n, input_dim) in [0, 1]."""
    x, _, _ = load_dataset("digits")
    model = GaussianMixtureVAE(64, (64,), 4, n_components=10, activation="elu", rng=0)
    model.fit(x, epochs=10, batch_size=64, rng=0, progress=False)
    assert model.history_["loss"][-1] < model.history_["loss"][0] - 10
    s = model.sample(7, rng=0)
    assert s.shape == (7, 64) and 0 <= s.min() <= s.max() <= 1
    z, comp = model.sample_prior(2000, rng=0)
    # each drawn code lies near its own component: the mean offset is tiny next to the spread
    offsets = z - model.parameters()["prior.mean"][comp]
    assert np.all(np.abs(offsets.mean(axis=0)) < 0.2)


def test_save_and_load_round_trip(tmp_path):
    """A saved model, prior included, loads with the same loss on fixed noise."""
    model = GaussianMixtureVAE(6, (5,), 2, n_components=4, rng=0)
    model.parameters()["prior.mean"][...] += 1.0
    x, eps = np.full((3, 6), 0.3), np.ones((3, 2))
    loaded = GaussianMixtureVAE.load(model.save(tmp_path / "gm.npz"))
    assert loaded.loss(x, eps=eps) == model.loss(x, eps=eps)
    assert repr(loaded) == repr(model)
