"""The mixture-prior VAE: its log-density against scipy, gradients, the Monte Carlo KL, training."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import bernoulli, multivariate_normal, norm

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


# --- the constructor, the record, the bounds and the sampler against independent routes ---


def _tiny_model(beta=1.0, dtype=np.float64, seed=0):
    """A 5-4-2 tanh model with 3 spread-out components, so every formula is exercised."""
    rng = np.random.default_rng(seed)
    model = GaussianMixtureVAE(
        5, (4,), 2, n_components=3, beta=beta, activation="tanh", dtype=dtype, rng=seed
    )
    model.parameters()["prior.mean"][...] = rng.normal(0, 1, (3, 2))
    model.parameters()["prior.log_var"][...] = rng.normal(0, 0.5, (3, 2))
    return model


def _mlp_by_hand(model, name, x):
    """Dense, tanh, Dense of the network ``name``, written with the raw parameter arrays."""
    p = model.parameters()
    h = np.tanh(x @ p[f"{name}.0.W"] + p[f"{name}.0.b"])
    return h @ p[f"{name}.2.W"] + p[f"{name}.2.b"]


def _pass_by_hand(model, x, eps):
    """mu, log_var, z, -ln p(x|z), ln q(z|x) and ln p(z) per row, from scipy's log-pdfs."""
    h = _mlp_by_hand(model, "encoder", x)
    mu, log_var = h[:, :2], h[:, 2:]
    z = mu + np.exp(log_var / 2) * eps
    prob = 1 / (1 + np.exp(-_mlp_by_hand(model, "decoder", z)))
    nll = -bernoulli.logpmf(x, prob).sum(axis=1)
    log_q = norm.logpdf(z, mu, np.exp(log_var / 2)).sum(axis=1)
    means, log_vars = model.parameters()["prior.mean"], model.parameters()["prior.log_var"]
    comps = norm.logpdf(z[:, None, :], means[None], np.exp(log_vars / 2)[None]).sum(axis=2)
    log_p = logsumexp(comps, axis=1) - np.log(len(means))
    return mu, log_var, z, nll, log_q, log_p


def test_constructor_defaults_are_those_of_cs236():
    """By default latent_dim is 20, K is 500 and beta is 1 (the ELBO), with a (400,) encoder."""
    model = GaussianMixtureVAE(5)
    config = model.get_config()
    assert (config["latent_dim"], config["n_components"], config["beta"]) == (20, 500, 1.0)
    assert config["hidden_dims"] == [400]
    assert model.parameters()["prior.mean"].shape == (500, 20)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_components": 0}, ValueError, "^n_components must be >= 1"),
        ({"n_components": 2.5}, TypeError, "^n_components must be an integer"),
        ({"beta": -0.5}, ValueError, "^beta must be a finite number >= 0"),
        ({"beta": "1"}, TypeError, "^beta must be a number"),
    ],
)
def test_invalid_constructor_arguments_are_named(kwargs, error, message):
    """A bad n_components or beta raises an error whose message starts with the parameter's name."""
    with pytest.raises(error, match=message):
        GaussianMixtureVAE(5, (4,), 2, **kwargs)


def test_invalid_number_of_prior_samples_is_named():
    """sample_prior with n = 0 or a float says that n is wrong."""
    model = _tiny_model()
    with pytest.raises(ValueError, match="^n must be >= 1"):
        model.sample_prior(0)
    with pytest.raises(TypeError, match="^n must be an integer"):
        model.sample_prior(2.0)


def test_float32_model_keeps_float32_and_its_bounds_are_float64():
    """A float32 model's parameters and prior codes are float32; its log-weights and ELBO float64."""
    model = GaussianMixtureVAE(5, (4,), 2, n_components=3, rng=0)
    assert {p.dtype for p in model.parameters().values()} == {np.dtype(np.float32)}
    assert model.sample_prior(4, rng=0)[0].dtype == np.float32
    x = (np.arange(10).reshape(2, 5) % 2).astype(np.float32)
    assert model.log_importance_weights((x,), 3, rng=0).dtype == np.float64
    assert model.elbo_for_batch((x,), rng=0).dtype == np.float64


def test_seed_fixes_every_parameter_and_prior_means_have_variance_one_over_kd():
    """Equal seeds give equal networks and prior; m_k ~ N(0, 1/(K d)) and l_k = 0 at the start."""
    a = GaussianMixtureVAE(5, (4,), 4, n_components=500, dtype=np.float64, rng=7)
    b = GaussianMixtureVAE(5, (4,), 4, n_components=500, dtype=np.float64, rng=7)
    for name, p in a.parameters().items():
        np.testing.assert_array_equal(p, b.parameters()[name], err_msg=name)
    means = a.parameters()["prior.mean"]
    assert 0.9 < means.std() * np.sqrt(500 * 4) < 1.1  # 2000 draws: the SE is about 0.016
    assert np.all(a.parameters()["prior.log_var"] == 0)


def test_code_and_reconstruct_match_the_networks_by_hand():
    """code(x) is the encoder's first latent_dim outputs; reconstruct(x) is sigmoid(decoder(code))."""
    model = _tiny_model()
    x = np.random.default_rng(1).random((3, 5))
    mu = _mlp_by_hand(model, "encoder", x)[:, :2]
    np.testing.assert_allclose(model.code(x), mu, rtol=1e-12)
    expected = 1 / (1 + np.exp(-_mlp_by_hand(model, "decoder", mu)))
    np.testing.assert_allclose(model.reconstruct(x), expected, rtol=1e-12)


def test_forward_record_and_loss_terms_match_scipy():
    """The record's fields, the terms' keys and loss = nll + beta * (ln q - ln p) match scipy."""
    model = _tiny_model(beta=0.5)
    rng = np.random.default_rng(2)
    x, eps = (rng.random((4, 5)) < 0.5).astype(float), rng.standard_normal((4, 2))
    mu, log_var, z, nll, log_q, log_p = _pass_by_hand(model, x, eps)
    f = model.forward((x,), eps, beta=2.0)
    for got, expected in ((f.mu, mu), (f.log_var, log_var), (f.z, z)):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(f.log_q, log_q, rtol=1e-12)
    np.testing.assert_allclose(f.log_p, log_p, rtol=1e-12)
    assert f.beta == 2.0 and model.forward((x,), eps).beta == 0.5
    terms = model.loss_terms(f)
    assert set(terms) == {"loss", "reconstruction", "kl"}
    np.testing.assert_allclose(terms["reconstruction"], nll, rtol=1e-12)
    np.testing.assert_allclose(terms["kl"], log_q - log_p, rtol=1e-12)
    np.testing.assert_allclose(terms["loss"], nll + 2.0 * (log_q - log_p), rtol=1e-12)


def test_log_importance_weights_and_elbo_match_scipy_at_beta_one():
    """ln w = ln p(x|z) + ln p(z) - ln q(z|x) for sample-major noise, whatever the model's beta."""
    model = _tiny_model(beta=0.5)
    x = (np.random.default_rng(3).random((4, 5)) < 0.5).astype(float)
    eps = np.random.default_rng(9).standard_normal((3, 4, 2))
    expected = []
    for j in range(3):
        _, _, _, nll, log_q, log_p = _pass_by_hand(model, x, eps[j])
        expected.append(-nll + log_p - log_q)
    expected = np.array(expected)
    np.testing.assert_allclose(model.log_importance_weights((x,), 3, rng=9), expected, rtol=1e-10)
    elbo = model.elbo_for_batch((x,), n_samples=3, rng=9)
    assert elbo.shape == (4,)
    np.testing.assert_allclose(elbo, expected.mean(axis=0), rtol=1e-10)
    # one sample by default: the first draw of the same seed, as a (1, 4, 2) array
    _, _, _, nll, log_q, log_p = _pass_by_hand(model, x, eps[0])
    np.testing.assert_allclose(model.elbo_for_batch((x,), rng=9), -nll + log_p - log_q, rtol=1e-10)


def test_backward_with_one_hot_weights_is_that_rows_gradient():
    """backward(f, weights=e_i) on a batch gives the gradient of the loss of row i alone."""
    model = _tiny_model(beta=0.7)
    rng = np.random.default_rng(4)
    x, eps = rng.random((4, 5)), rng.standard_normal((4, 2))
    model.zero_grad()
    model.backward(model.forward((x,), eps), weights=np.array([0.0, 0.0, 1.0, 0.0]))
    weighted = {k: g.copy() for k, g in model.gradients().items()}
    _, alone = model.loss_and_gradients(x[2:3], eps=eps[2:3])
    for name, g in alone.items():
        np.testing.assert_allclose(weighted[name], g, rtol=1e-10, atol=1e-14, err_msg=name)


def test_sample_prior_noise_is_the_models_own_noise_draw():
    """With one component N(c, s^2), a seed gives z = c + s * eps, eps the model's float32 noise."""
    model = GaussianMixtureVAE(5, (4,), 2, n_components=1, rng=0)
    model.parameters()["prior.mean"][...] = [1.5, -2.0]
    model.parameters()["prior.log_var"][...] = 2 * np.log([3.0, 0.5])
    z, comp = model.sample_prior(6, rng=5)
    eps = model.noise(None, (6, 2), 5)
    assert z.dtype == np.float32 and np.all(comp == 0)
    np.testing.assert_allclose(z, [1.5, -2.0] + np.array([3.0, 0.5]) * eps, rtol=1e-6)


def test_sample_prior_draws_every_component_with_its_own_spread():
    """Both of two far-apart components are drawn about equally, each with its own std."""
    model = GaussianMixtureVAE(5, (4,), 1, n_components=2, dtype=np.float64, rng=0)
    model.parameters()["prior.mean"][...] = [[-10.0], [10.0]]
    model.parameters()["prior.log_var"][...] = 2 * np.log([[0.5], [2.0]])
    z, comp = model.sample_prior(4000, rng=0)
    assert 1800 < np.sum(comp == 0) < 2200  # binomial(4000, 1/2): SD about 32
    for k, (mean, std) in enumerate(((-10.0, 0.5), (10.0, 2.0))):
        offsets = z[comp == k, 0] - mean
        assert abs(offsets.mean()) < 0.2 * std and 0.9 < offsets.std() / std < 1.1


def test_sample_decodes_the_prior_draw_of_the_same_seed():
    """sample(n, rng=s) is sigmoid(decoder(z)) for the codes sample_prior(n, rng=s) draws."""
    model = _tiny_model()
    z = model.sample_prior(3, rng=4)[0]
    expected = 1 / (1 + np.exp(-_mlp_by_hand(model, "decoder", z)))
    np.testing.assert_allclose(model.sample(3, rng=4), expected, rtol=1e-12)


def test_responsibilities_are_flushed_relative_to_their_own_row():
    """A component 2.5e-21 responsible for one z keeps its gradient though another z is sure."""
    # components 0-9 at 0, component 10 at 9.5, component 11 at -100, all of unit variance:
    # z = 0 gives each of 0-9 about 0.1 and component 10 exp(-45.125) / 10 = 2.5e-21, above
    # 1e-20 of its row's largest; z = -100 belongs to component 11 with responsibility 1
    means = np.array([[0.0]] * 10 + [[9.5], [-100.0]])
    log_vars = np.zeros((12, 1))
    z, w = np.array([[0.0], [-100.0]]), np.array([1.0, 1.0])
    comps = norm.logpdf(z[:, None, 0], means[None, :, 0], 1.0)  # (2, 12)
    r = np.exp(comps - logsumexp(comps, axis=1, keepdims=True))
    assert 1e-21 < r[0, 10] < 1e-20
    diff = z[:, None, 0] - means[None, :, 0]  # (z_b - m_k), unit variances
    d_z = -np.sum(r * diff, axis=1, keepdims=True) * w[:, None]
    d_means = np.sum(w[:, None] * r * diff, axis=0)[:, None]
    d_log_vars = 0.5 * np.sum(w[:, None] * r * (diff**2 - 1), axis=0)[:, None]
    got = mixture_log_density_grad(z, means, log_vars, w)
    for analytic, expected in zip(got, (d_z, d_means, d_log_vars), strict=True):
        np.testing.assert_allclose(analytic, expected, rtol=1e-9, atol=0)
