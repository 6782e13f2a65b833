"""ELBO <= IWAE_k <= ln p(x): the three estimates against each other and against independent integrals."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from scipy import integrate, stats

from vae_numpy.autoencoder import Autoencoder
from vae_numpy.cvae import ConditionalVAE
from vae_numpy.data import load_dataset
from vae_numpy.distributions import log_normal_pdf
from vae_numpy.evaluate import (
    _pairwise_log_likelihood,
    elbo,
    exact_log_likelihood,
    exact_posterior,
    iwae_log_likelihood,
)
from vae_numpy.gmvae import GaussianMixtureVAE
from vae_numpy.kl import kl_standard_normal
from vae_numpy.ssvae import SemiSupervisedVAE
from vae_numpy.vae import VAE


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Train and test rows of the 8x8 digits, float32 in [0, 1]."""
    return load_dataset("digits").x, load_dataset("digits", "test").x


@pytest.fixture(scope="module")
def trained(digits) -> VAE:
    """A VAE with a 2-D latent space trained for 30 epochs on the digits (under a second)."""
    x_train, _ = digits
    return VAE(64, (32,), 2, rng=0).fit(x_train, epochs=30, batch_size=64, rng=0, progress=False)


def _as_float64(model: VAE) -> VAE:
    copy = VAE(model.input_dim, model.hidden_dims, model.latent_dim, dtype=np.float64)
    for name, p in copy.parameters().items():
        p[...] = model.parameters()[name]
    return copy


def _tiny_tanh_model() -> VAE:
    """2 pixels, 2 latents, a smooth nonlinear (tanh) decoder with a peaked likelihood."""
    model = VAE(2, (3,), 2, activation="tanh", dtype=np.float64, rng=5)
    for name, p in model.parameters().items():
        if name.startswith("decoder") and name.endswith("W"):
            p *= 8.0
    return model


# --- the ordering ELBO <= IWAE_k <= ln p(x) ------------------------------------------------------


def test_elbo_is_below_iwae_on_average_and_for_most_examples(trained, digits):
    """ELBO (5000 draws) <= IWAE_1000 on average and for at least 90% of the test examples."""
    x = digits[1][:100]
    lower = elbo(trained, x, n_samples=5000, rng=1)
    iwae = iwae_log_likelihood(trained, x, k=1000, rng=2)
    assert lower.shape == iwae.shape == (100,)
    assert lower.mean() < iwae.mean()
    assert np.mean(lower <= iwae) >= 0.9, np.c_[lower, iwae][lower > iwae]


def test_iwae_mean_does_not_decrease_with_k(trained, digits):
    """The mean of IWAE_k over the training set rises from k = 1 to 10, 100 and 1000."""
    means = [iwae_log_likelihood(trained, digits[0], k=k, rng=3).mean() for k in (1, 10, 100, 1000)]
    assert np.all(np.diff(means) > 0), means


def test_iwae_with_one_sample_has_the_expectation_of_the_elbo(trained, digits):
    """E[IWAE_1] = ELBO: mean difference over 6000 rows within 4 standard errors of 0."""
    x = np.tile(digits[0], (4, 1))
    d = iwae_log_likelihood(trained, x, k=1, rng=1) - elbo(trained, x, rng=2)
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert abs(d.mean()) < 4 * se, (d.mean(), se)


def test_iwae_5000_is_within_a_tenth_of_a_nat_of_the_exact_log_likelihood(trained, digits):
    """IWAE_5000 meets the quadrature ln p(x) within 0.1 nat per example (0.03 on average)."""
    x = digits[1][:20]
    iwae = iwae_log_likelihood(trained, x, k=5000, rng=4)
    exact = exact_log_likelihood(trained, x)
    np.testing.assert_allclose(iwae, exact, atol=0.1)
    assert abs(np.mean(iwae - exact)) < 0.03


def test_elbo_gap_is_the_kl_from_recognition_model_to_true_posterior(trained, digits):
    """ELBO = ln p(x) - KL(q(z|x) || p(z|x)), the KL taken on the grid of exact_posterior."""
    x = digits[1][:8]
    lower = elbo(trained, x, n_samples=20000, rng=5)
    exact = exact_log_likelihood(trained, x)
    mu, log_var = trained.encode(x)
    gaps = []
    for i in range(len(x)):
        z1, z2, post = exact_posterior(trained, x[i], grid=300, limit=6.0)
        h = 12.0 / 300
        z = np.stack([z1.ravel(), z2.ravel()], axis=1)
        log_q = log_normal_pdf(z, mu[i].astype(np.float64), log_var[i].astype(np.float64))
        gaps.append(np.sum(np.exp(log_q) * (log_q - np.log(post.ravel()))) * h * h)
    gaps_a = np.array(gaps)
    assert np.all(gaps_a > 0.01)  # the recognition Gaussian is not the posterior ...
    assert abs(np.mean(lower - (exact - gaps_a))) < 0.02  # ... and the ELBO pays exactly that


def test_elbo_ignores_beta_and_equals_score_at_beta_one(trained, digits):
    """With beta = 1 the mean ELBO is model.score (same noise); beta changes score, not the ELBO."""
    x = digits[1]
    values = elbo(trained, x, rng=0)
    assert values.dtype == np.float64
    assert values.mean() == pytest.approx(trained.score(x, rng=0), abs=1e-5)
    heavy = VAE(64, (32,), 2, beta=4.0, rng=0)
    for name, p in heavy.parameters().items():
        p[...] = trained.parameters()[name]
    np.testing.assert_array_equal(elbo(heavy, x, rng=0), values)
    assert heavy.score(x, rng=0) < values.mean() - 1.0


# --- the quadrature ------------------------------------------------------------------------------


def test_exact_log_likelihood_converges_as_the_grid_is_refined(trained, digits):
    """Doubling the points per axis (25 ... 400) shrinks the change; the last is below 1e-4 nat."""
    x = digits[1][:20]
    values = [exact_log_likelihood(trained, x, grid=g).mean() for g in (25, 50, 100, 200, 400)]
    changes = np.abs(np.diff(values))
    assert np.all(np.diff(changes) < 0), changes
    assert changes[-1] < 1e-4


def test_exact_log_likelihood_is_stable_as_the_limit_grows(trained, digits):
    """At a fixed spacing, widening [-L, L]^2 only adds mass, and from L = 6 nothing measurable."""
    x = digits[1][:20]
    h = 0.04
    values = np.array(
        [exact_log_likelihood(trained, x, grid=round(2 * L / h), limit=L) for L in (3, 4, 6, 8, 10)]
    )  # (5, 20)
    # up to rounding: the float32 decoder's products round differently with the size of the
    # grid's batches and with the CPU's BLAS kernel (seen: -2.5e-9 nat on one, none on another)
    assert np.all(np.diff(values, axis=0) >= -1e-8)
    np.testing.assert_allclose(values[2:], np.broadcast_to(values[-1], (3, 20)), rtol=0, atol=1e-8)


def test_exact_log_likelihood_matches_dblquad_on_a_two_pixel_model():
    """The grid agrees with scipy's adaptive dblquad of p(x|z) p(z) over [-10, 10]^2 to 1e-7 nat."""
    model = _tiny_tanh_model()
    x = np.array([[0.0, 1.0], [0.9, 0.2]])
    for row in x:

        def joint(z2: float, z1: float, row: np.ndarray = row) -> float:
            log_lik = model.log_likelihood(row[None], np.array([[z1, z2]]))[0]
            return math.exp(log_lik - 0.5 * (z1 * z1 + z2 * z2)) / (2 * math.pi)

        value, err = integrate.dblquad(joint, -10, 10, -10, 10, epsabs=0, epsrel=1e-8)
        assert err < 1e-7 * value
        assert exact_log_likelihood(model, row[None])[0] == pytest.approx(math.log(value), abs=1e-7)


def test_exact_log_likelihood_matches_the_linear_gaussian_closed_form():
    """A decoder kept linear (ReLU pre-activations > 0 on the grid) gives ln N(x; c, A'A + diag s^2)."""
    model = VAE(3, (4,), 2, likelihood="gaussian", dtype=np.float64, rng=1)
    gen = np.random.default_rng(2)
    w1, b1 = gen.standard_normal((2, 4)), np.full(4, 50.0)
    w2, c = 0.5 * gen.standard_normal((4, 3)), gen.standard_normal(3)
    assert np.all(b1 - 8.0 * np.abs(w1).sum(axis=0) > 0)  # ReLU is the identity on [-8, 8]^2
    params = model.parameters()
    params["decoder.0.W"][...], params["decoder.0.b"][...] = w1, b1
    params["decoder.2.W"][...], params["decoder.2.b"][...] = w2, c - b1 @ w2  # x = z A + c
    params["decoder.log_var"][...] = 2 * np.log([0.3, 0.5, 0.2])
    a = w1 @ w2  # (2, 3)
    cov = a.T @ a + np.diag(np.exp(params["decoder.log_var"]))
    x = c + 1.5 * gen.standard_normal((5, 3))
    expected = stats.multivariate_normal(c, cov).logpdf(x)
    np.testing.assert_allclose(exact_log_likelihood(model, x), expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_pairwise_log_likelihood_equals_the_models_log_likelihood(likelihood):
    """The matrix-product form of ln p(x_i|z_g) equals model.log_likelihood on every pair."""
    model = VAE(5, (7,), 2, likelihood=likelihood, dtype=np.float64, rng=3)
    if likelihood == "gaussian":
        model.parameters()["decoder.log_var"][...] = np.linspace(-3, 1, 5)
    gen = np.random.default_rng(4)
    x, z = gen.uniform(size=(4, 5)), 3 * gen.standard_normal((6, 2))
    pairwise = _pairwise_log_likelihood(model, x, model.decoder.forward(z))  # (4, 6)
    direct = model.log_likelihood(np.repeat(x, 6, axis=0), np.tile(z, (4, 1))).reshape(4, 6)
    np.testing.assert_allclose(pairwise, direct, rtol=1e-12, atol=1e-12)


def test_exact_posterior_integrates_to_one_near_the_encoder_mean(trained, digits):
    """p(z|x) on the grid sums to 1; the encoder's mu lies within one posterior std of its mean."""
    for x in digits[1][:8]:
        z1, z2, density = exact_posterior(trained, x, grid=200, limit=4.0)
        h = 8.0 / 200
        assert z1.shape == z2.shape == density.shape == (200, 200)
        assert np.all(density >= 0)
        assert density.sum() * h * h == pytest.approx(1.0, abs=1e-12)
        weights = density * h * h  # probability of each cell
        mean = np.array([np.sum(z1 * weights), np.sum(z2 * weights)])
        std = np.sqrt(
            [np.sum((z1 - mean[0]) ** 2 * weights), np.sum((z2 - mean[1]) ** 2 * weights)]
        )
        mu, _ = trained.encode(x[None])
        assert np.linalg.norm(mean - mu[0]) < std.min(), (mean, mu[0], std)


def test_exact_posterior_is_the_joint_over_the_evidence_at_each_grid_point(trained, digits):
    """density[i, j] = p(x|z) p(z) / p(x) at z = (z1[i, j], z2[i, j]); the axes are cell midpoints."""
    model = _as_float64(trained)
    x = digits[1][3]
    z1, z2, density = exact_posterior(model, x, grid=120, limit=4.0)
    h = 8.0 / 120
    np.testing.assert_allclose(z1[0], -4.0 + h * (np.arange(120) + 0.5), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(z2[:, 0], z1[0])
    log_px = exact_log_likelihood(model, x[None], grid=120, limit=4.0)[0]
    rows, cols = np.random.default_rng(7).integers(0, 120, size=(2, 50))
    z = np.stack([z1[rows, cols], z2[rows, cols]], axis=1)  # (50, 2)
    log_joint = model.log_likelihood(np.tile(x, (50, 1)), z) - 0.5 * np.sum(z * z, axis=1)
    expected = np.exp(log_joint - math.log(2 * math.pi) - log_px)
    np.testing.assert_allclose(density[rows, cols], expected, rtol=1e-9, atol=0)


def test_when_the_decoder_ignores_z_the_posterior_is_the_prior_and_the_gap_is_the_kl(digits):
    """With decoder weights 0, ln p(x) = ln p(x|z), p(z|x) = N(0, I) and ELBO = ln p(x) - KL."""
    model = VAE(64, (16,), 2, dtype=np.float64, rng=8)
    for name, p in model.parameters().items():
        if name.startswith("decoder") and name.endswith("W"):
            p[...] = 0.0
    x = digits[1][:5]
    log_lik = model.log_likelihood(x, np.zeros((5, 2)))
    exact = exact_log_likelihood(model, x)
    np.testing.assert_allclose(exact, log_lik, rtol=0, atol=1e-9)  # prior mass 1 - 2.4e-15
    mu, log_var = model.encode(x)
    lower = elbo(model, x, n_samples=7, rng=0)
    np.testing.assert_allclose(lower, exact - kl_standard_normal(mu, log_var), rtol=0, atol=1e-9)
    z1, z2, density = exact_posterior(model, x[0], grid=100, limit=5.0)
    prior = np.exp(-0.5 * (z1**2 + z2**2)) / (2 * math.pi)
    mass = np.sum(prior) * 0.1**2  # the prior mass inside [-5, 5]^2 by the same midpoint rule
    np.testing.assert_allclose(density, prior / mass, rtol=1e-9, atol=0)


# --- chunking and input checks ------------------------------------------------------------------


def test_iwae_does_not_depend_on_chunk_size(trained, digits):
    """Same rng, chunk_size 1, 7, 64 or all k at once: the same estimate to 1e-10 (float64)."""
    model = _as_float64(trained)
    x = digits[1][:10]
    results = [
        iwae_log_likelihood(model, x, k=300, chunk_size=c, batch_size=4, rng=6)
        for c in (1, 7, 64, 300)
    ]
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=0, atol=1e-10)


def test_estimators_reject_bad_input(trained, digits):
    """latent_dim != 2 for the grid, k = 0, n_samples = 0, grid = 0, an Autoencoder, wrong widths."""
    x = digits[1][:3]
    with pytest.raises(ValueError, match="latent_dim=3"):
        exact_log_likelihood(VAE(64, (8,), 3, rng=0), x)
    with pytest.raises(ValueError, match="latent_dim=3"):
        exact_posterior(VAE(64, (8,), 3, rng=0), x[0])
    with pytest.raises(ValueError, match="k must be >= 1"):
        iwae_log_likelihood(trained, x, k=0)
    with pytest.raises(ValueError, match="n_samples"):
        elbo(trained, x, n_samples=0)
    with pytest.raises(ValueError, match="grid"):
        exact_log_likelihood(trained, x, grid=0)
    with pytest.raises(TypeError, match="k must be an integer"):
        iwae_log_likelihood(trained, x, k=10.0)
    with pytest.raises(ValueError, match="one example"):
        exact_posterior(trained, x)
    with pytest.raises(ValueError, match="features"):
        iwae_log_likelihood(trained, x[:, :10], k=5)
    autoencoder = Autoencoder(64, (32,), 2, rng=0)
    for estimate in (elbo, iwae_log_likelihood, exact_log_likelihood):
        with pytest.raises(TypeError, match="defined for a model of the VAE family"):
            estimate(autoencoder, x)


def test_estimators_emit_no_warnings(trained, digits):
    """No overflow or divide warnings on extreme inputs (all-zero and all-one images)."""
    x = np.vstack([np.zeros(64), np.ones(64)]).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = [
            elbo(trained, x, n_samples=10, rng=0),
            iwae_log_likelihood(trained, x, k=100, rng=0),
            exact_log_likelihood(trained, x, grid=200),
        ]
    assert all(np.all(np.isfinite(v)) for v in values)
    assert np.all(values[0] <= values[2] + 0.5) and np.all(values[1] <= values[2] + 0.5)


# --- every model of the family, with its own prior and conditioning ----------------------------


def _family_model(name: str) -> Any:
    """A small float64 model of the family with a 2-D latent space, briefly trained on digits."""
    x, y, _ = load_dataset("digits")
    x, y = x[:400], y[:400]
    if name == "vae":
        model = VAE(64, (16,), 2, dtype=np.float64, rng=0)
        return model.fit(x, epochs=3, batch_size=50, rng=0, progress=False)
    if name == "cvae":
        model = ConditionalVAE(64, 10, (16,), 2, dtype=np.float64, rng=0)
        return model.fit(x, y, epochs=3, batch_size=50, rng=0, progress=False)
    if name == "gmvae":
        model = GaussianMixtureVAE(64, (16,), 2, n_components=5, dtype=np.float64, rng=0)
        return model.fit(x, epochs=3, batch_size=50, rng=0, progress=False)
    model = SemiSupervisedVAE(64, 10, (16,), 2, dtype=np.float64, rng=0)
    return model.fit(x, np.where(np.arange(400) < 100, y, -1), epochs=2, batch_size=50, rng=0)


FAMILY = ("vae", "cvae", "gmvae", "ssvae")


@pytest.fixture(scope="module")
def family() -> dict[str, Any]:
    """Each model of the family, trained a little (about a second in all)."""
    return {name: _family_model(name) for name in FAMILY}


def _test_data(model: Any) -> tuple[np.ndarray, ...]:
    """Test rows, with their labels for a model of p(x|y)."""
    x, y, _ = load_dataset("digits", "test")
    return (x[:60], y[:60]) if model.conditional else (x[:60],)


@pytest.mark.parametrize("name", FAMILY)
def test_elbo_of_every_model_is_its_score_with_the_same_noise(family, name):
    """elbo(model, X[, y]) with one draw averages to model.score (beta = 1, same seed)."""
    model = family[name]
    data = _test_data(model)
    values = elbo(model, *data, rng=0)
    assert values.shape == (60,) and values.dtype == np.float64
    assert values.mean() == pytest.approx(model.score(*data, rng=0), rel=1e-12)


@pytest.mark.parametrize("name", FAMILY)
def test_iwae_of_every_model_has_the_elbo_as_expectation_at_k_one_and_rises_with_k(family, name):
    """E[IWAE_1] = ELBO (within 4 standard errors) and the mean of IWAE_k rises for k = 1, 10, 100."""
    model = family[name]
    data = tuple(np.tile(a, 5) if a.ndim == 1 else np.tile(a, (5, 1)) for a in _test_data(model))
    d = iwae_log_likelihood(model, *data, k=1, rng=1) - elbo(model, *data, rng=2)
    assert abs(d.mean()) < 4 * d.std(ddof=1) / math.sqrt(len(d)), d.mean()
    means = [iwae_log_likelihood(model, *data, k=k, rng=3).mean() for k in (1, 10, 100)]
    assert np.all(np.diff(means) > 0), means


@pytest.mark.parametrize("name", FAMILY)
def test_iwae_of_every_model_does_not_depend_on_chunk_size(family, name):
    """Same rng, any chunk_size: the same estimate (the draws are read sample-major)."""
    model = family[name]
    data = _test_data(model)
    results = [
        iwae_log_likelihood(model, *data, k=24, chunk_size=c, batch_size=16, rng=4)
        for c in (1, 5, 24)
    ]
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=0, atol=1e-10)


def test_gmvae_bounds_use_its_mixture_prior_and_meet_the_exact_log_likelihood(family):
    """For the GMVAE: ELBO < IWAE_2000 <= exact ln p(x) (quadrature under the mixture), close."""
    model = family["gmvae"]
    (x,) = _test_data(model)
    x = x[:10]
    exact = exact_log_likelihood(model, x, grid=300)
    iwae = iwae_log_likelihood(model, x, k=2000, rng=5)
    lower = elbo(model, x, n_samples=500, rng=6)
    assert lower.mean() < iwae.mean() <= exact.mean() + 0.01
    np.testing.assert_allclose(iwae, exact, atol=0.1)
    # the N(0, I) prior would give a different number: the mixture is really used
    plain = VAE(64, (16,), 2, dtype=np.float64)
    for k, p in plain.parameters().items():
        p[...] = model.parameters()[k]
    assert abs(exact_log_likelihood(plain, x, grid=300).mean() - exact.mean()) > 0.1


def test_cvae_bounds_need_the_labels_and_depend_on_them(family):
    """A conditional VAE's bounds are on ln p(x|y): no y is a TypeError; the true y scores best."""
    model = family["cvae"]
    x, y = _test_data(model)
    with pytest.raises(TypeError, match="pass the labels"):
        elbo(model, x)
    with pytest.raises(TypeError, match="pass the labels"):
        iwae_log_likelihood(model, x, k=5)
    with pytest.raises(TypeError, match="integrates"):
        exact_log_likelihood(model, x)
    right = iwae_log_likelihood(model, x, y, k=50, rng=0)
    wrong = iwae_log_likelihood(model, x, (y + 5) % 10, k=50, rng=0)
    assert right.mean() > wrong.mean()


def test_m2_bound_sums_out_the_label_and_a_labelled_row_bounds_the_joint(family):
    """M2 on X alone bounds ln p(x); with its label a row bounds ln p(x, y) <= ln p(x)."""
    model = family["ssvae"]
    x, y, _ = load_dataset("digits", "test")
    x, y = x[:40], y[:40]
    marginal = iwae_log_likelihood(model, x, k=200, rng=0)
    unlabelled = iwae_log_likelihood(model, x, np.full(40, -1), k=200, rng=0)
    np.testing.assert_array_equal(marginal, unlabelled)
    joint = iwae_log_likelihood(model, x, y, k=200, rng=0)
    assert joint.mean() < marginal.mean()  # p(x, y) = p(y|x) p(x) <= p(x)
    np.testing.assert_allclose(elbo(model, x, rng=1), -model.unlabelled_bound(x, rng=1), rtol=1e-12)
