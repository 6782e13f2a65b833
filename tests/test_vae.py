"""The VAE: whole-model gradients, the loss against an independent computation, sampling, files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.strategies import seeds
from vae_numpy.base import LOG_VAR_RANGE
from vae_numpy.gradcheck import check_model
from vae_numpy.vae import VAE


def _data(rng, n, d, likelihood):
    return rng.random((n, d)) if likelihood == "bernoulli" else rng.normal(0, 1, (n, d))


def _min_abs_preactivation(model, x, noise):
    """Smallest |input| of any hidden activation in the encoder and decoder for this batch."""
    smallest, h = np.inf, x
    for net in (model.encoder, model.decoder):
        if net is model.decoder:
            mu, log_var = h[:, : model.latent_dim], h[:, model.latent_dim :]
            h = mu + np.exp(0.5 * log_var) * noise
        for layer in net.layers:
            h = layer.forward(h)
            if layer is not net.layers[-1] and hasattr(layer, "params") and layer.params:
                smallest = min(smallest, float(np.min(np.abs(h))))
    return smallest


@settings(max_examples=25)
@given(
    seeds,
    st.sampled_from(["bernoulli", "gaussian"]),
    st.sampled_from(["relu", "tanh", "softplus", "leaky_relu", "sigmoid"]),
    st.floats(0.0, 3.0),
    st.lists(st.integers(2, 5), min_size=1, max_size=2),
)
def test_vae_gradients_match_central_differences(seed, likelihood, activation, beta, hidden):
    """Every parameter gradient of the -ELBO (fixed noise) matches central differences to 1e-6."""
    rng = np.random.default_rng(seed)
    model = VAE(
        5,
        hidden,
        3,
        likelihood=likelihood,
        beta=beta,
        activation=activation,
        dtype=np.float64,
        rng=rng,
    )
    if likelihood == "gaussian":
        model.parameters()["decoder.log_var"][...] = rng.normal(0, 0.5, 5)
    x = _data(rng, 4, 5, likelihood)
    noise = rng.standard_normal((4, 3))
    if activation in ("relu", "leaky_relu"):  # keep ReLU kinks out of the difference step
        assume(_min_abs_preactivation(model, x, noise) > 1e-3)
    # fourth-order differences with h = 1e-4: encoder gradients behind a leaky ReLU can be 1e-5
    # of the loss, where the rounding error of second-order differences at 1e-6 reaches 1e-6
    check_model(model, x, noise=noise, eps=1e-4, order=4).assert_ok(1e-6)


def test_vae_loss_equals_independently_computed_negative_elbo():
    """loss = mean[BCE(x, sigmoid(decoder(mu + exp(log_var/2) eps)))] + beta * mean KL, by hand."""
    rng = np.random.default_rng(0)
    model = VAE(6, (5,), 2, beta=0.5, dtype=np.float64, rng=1)
    x, eps = rng.random((7, 6)), rng.standard_normal((7, 2))
    mu, log_var = model.encode(x)
    p = model.decode(mu + np.exp(log_var / 2) * eps)
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
    # KL(N(mu, s^2) || N(0, 1)) from the textbook formula -1/2 sum(1 + log s^2 - mu^2 - s^2)
    kl = -0.5 * (1 + log_var - mu**2 - np.exp(log_var)).sum(axis=1)
    assert model.loss(x, eps=eps) == pytest.approx(np.mean(bce + 0.5 * kl), rel=1e-12)
    parts = model.loss_parts(x, eps=eps)
    assert parts["reconstruction"] == pytest.approx(bce.mean(), rel=1e-12)
    assert parts["kl"] == pytest.approx(kl.mean(), rel=1e-12)
    np.testing.assert_allclose(parts["kl_per_dim"].sum(), kl.mean(), rtol=1e-12)


def test_gaussian_vae_loss_uses_learned_per_feature_variance():
    """With likelihood='gaussian' the reconstruction term is the Gaussian NLL with decoder.log_var."""
    rng = np.random.default_rng(0)
    model = VAE(4, (3,), 2, likelihood="gaussian", dtype=np.float64, rng=0)
    model.parameters()["decoder.log_var"][...] = [0.1, -0.3, 0.5, 0.0]
    x, eps = rng.normal(size=(5, 4)), rng.standard_normal((5, 2))
    mu, log_var = model.encode(x)
    mean = model.decode(mu + np.exp(log_var / 2) * eps)
    var = np.exp([0.1, -0.3, 0.5, 0.0])
    nll = (0.5 * np.log(2 * np.pi * var) + (x - mean) ** 2 / (2 * var)).sum(axis=1)
    assert model.loss_parts(x, eps=eps)["reconstruction"] == pytest.approx(nll.mean(), rel=1e-12)


def test_loss_is_invariant_to_batch_size():
    """A batch repeated twice (with its noise repeated) has the same mean loss."""
    rng = np.random.default_rng(0)
    model = VAE(6, (5,), 2, dtype=np.float64, rng=0)
    x, eps = rng.random((3, 6)), rng.standard_normal((3, 2))
    assert model.loss(np.vstack([x, x]), eps=np.vstack([eps, eps])) == pytest.approx(
        model.loss(x, eps=eps), rel=1e-14
    )


def test_loss_is_deterministic_with_fixed_noise_and_seeded_without():
    """Given eps the loss is a function of x; given a seed it is repeatable."""
    model = VAE(6, (5,), 2, rng=0)
    x = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    eps = np.ones((4, 2), np.float32)
    assert model.loss(x, eps=eps) == model.loss(x, eps=eps)
    assert model.loss(x, rng=3) == model.loss(x, rng=3)


def test_encoder_log_variance_is_clipped_to_documented_range():
    """Huge encoder outputs give log_var within LOG_VAR_RANGE and a finite loss and gradient."""
    model = VAE(4, (3,), 2, rng=0)
    model.parameters()["encoder.2.b"][2:] = [1e4, -1e4]
    x = np.full((2, 4), 0.5, np.float32)
    _, log_var = model.encode(x)
    assert log_var.min() >= LOG_VAR_RANGE[0] and log_var.max() <= LOG_VAR_RANGE[1]
    loss, grads = model.loss_and_gradients(x, rng=0)
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())


def test_samples_and_reconstructions_have_data_shape_and_range():
    """sample(n) and reconstruct(x) give (n, input_dim) probabilities in [0, 1] for Bernoulli."""
    model = VAE(10, (8,), 3, rng=0)
    s = model.sample(5, rng=0)
    r = model.reconstruct(np.random.default_rng(0).random((4, 10)))
    assert s.shape == (5, 10) and r.shape == (4, 10)
    assert s.dtype == r.dtype == np.float32
    assert 0 <= s.min() and s.max() <= 1
    np.testing.assert_array_equal(model.sample(5, rng=0), s)


def test_parameters_and_gradients_share_keys_and_shapes():
    """parameters() and the gradients from loss_and_gradients have the same names and shapes."""
    model = VAE(6, (5, 4), 3, likelihood="gaussian", rng=0)
    _, grads = model.loss_and_gradients(np.zeros((2, 6), np.float32), rng=0)
    params = model.parameters()
    assert list(params) == list(grads)
    assert all(params[k].shape == grads[k].shape for k in params)
    assert "decoder.log_var" in params and "encoder.0.W" in params


def test_repr_shows_hyperparameters():
    """repr(VAE(...)) shows the constructor arguments."""
    assert repr(VAE(64, (128,), 2, beta=4.0, rng=0)) == (
        "VAE(input_dim=64, hidden_dims=[128], latent_dim=2, likelihood='bernoulli', beta=4.0,"
        " activation='relu', dtype='float32')"
    )


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    """A loaded model reproduces the saved one's parameters, config, history and outputs exactly."""
    rng = np.random.default_rng(0)
    model = VAE(8, (6,), 2, likelihood="gaussian", beta=2.0, rng=0)
    x = rng.random((20, 8)).astype(np.float32)
    model.fit(x, epochs=2, batch_size=8, rng=0, progress=False)
    path = model.save(tmp_path / "model.npz")
    loaded = VAE.load(path)
    assert loaded.get_config() == model.get_config()
    assert loaded.history_ == model.history_
    for k, p in model.parameters().items():
        np.testing.assert_array_equal(loaded.parameters()[k], p)
    assert loaded.loss(x, rng=1) == model.loss(x, rng=1)
    np.testing.assert_array_equal(loaded.sample(3, rng=2), model.sample(3, rng=2))


def test_vae_rejects_bad_input_with_clear_messages():
    """Wrong feature counts, 1-D input, 0-255 pixels, bad names and sizes raise helpful errors."""
    model = VAE(64, (8,), 2, rng=0)
    with pytest.raises(ValueError, match="64"):
        model.loss(np.zeros((2, 784)))
    with pytest.raises(ValueError, match="reshape"):
        model.encode(np.zeros(64))
    with pytest.raises(ValueError, match="divide by 255"):
        model.loss(np.full((1, 64), 255.0))
    with pytest.raises(ValueError, match="empty"):
        model.loss(np.zeros((0, 64)))
    with pytest.raises(ValueError, match="NaN"):
        model.loss(np.full((1, 64), np.nan))
    with pytest.raises(ValueError, match="'bernoulli', 'gaussian'"):
        VAE(64, likelihood="poisson")
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(64, latent_dim=0)
    with pytest.raises(TypeError, match="hidden_dims"):
        VAE(64, hidden_dims="400")
    with pytest.raises(ValueError, match="beta"):
        VAE(64, beta=-1.0)
    with pytest.raises(ValueError, match=r"eps must have shape"):
        model.loss(np.zeros((2, 64)), eps=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="z has 3 features but 2"):
        model.decode(np.zeros((1, 3)))
    assert model.loss([[0.5] * 64]) > 0  # a nested list is accepted and converted


def _batch(model, n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, model.input_dim))
    return model.check_data(x), rng.standard_normal((n, model.latent_dim))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_beta_override_of_a_training_step_is_used_for_loss_and_gradients(likelihood):
    """loss_and_gradients_for_batch(beta=b) equals a model built with beta=b (KL warm-up)."""
    a = VAE(5, (4,), 2, likelihood=likelihood, beta=1.0, dtype=np.float64, rng=0)
    batch, eps = _batch(a)
    for b in (0.0, 0.25, 3.0):
        ref = VAE(5, (4,), 2, likelihood=likelihood, beta=b, dtype=np.float64, rng=0)
        a.zero_grad()
        loss_a, parts_a = a.loss_and_gradients_for_batch(batch, eps=eps, beta=b)
        grads_a = {k: g.copy() for k, g in a.gradients().items()}
        loss_r, _ = ref.loss_and_gradients_for_batch(batch, eps=eps)
        assert loss_a == pytest.approx(loss_r, rel=1e-14)
        assert loss_a == pytest.approx(parts_a["reconstruction"] + b * parts_a["kl"], rel=1e-14)
        for k, g in ref.gradients().items():
            np.testing.assert_allclose(grads_a[k], g, rtol=1e-13, atol=1e-15)


def test_log_variance_gradient_is_zero_beyond_the_clip_and_flows_inside():
    """Past LOG_VAR_RANGE the loss is flat in the raw log-variance; inside, its gradient is not 0."""
    model = VAE(4, (3,), 3, dtype=np.float64, rng=0)
    params = model.parameters()
    params["encoder.2.W"][:, 3:] = 0.0  # raw log_var = the bias, whatever the input
    low, high = LOG_VAR_RANGE
    params["encoder.2.b"][3:] = [high + 5.0, low - 5.0, 0.3]
    batch, eps = _batch(model)
    model.loss_and_gradients_for_batch(batch, eps=eps)
    d_bias = model.gradients()["encoder.2.b"][3:]
    assert d_bias[0] == 0.0 and d_bias[1] == 0.0
    assert d_bias[2] != 0.0
    bias = params["encoder.2.b"]
    for j in (3, 4):  # the loss does not move when a clipped raw log-variance moves
        before = model.loss(batch[0], eps=eps)
        bias[j] += 1.0
        assert model.loss(batch[0], eps=eps) == before
        bias[j] -= 1.0


def test_vae_defaults_are_the_documented_ones():
    """VAE(input_dim) has hidden_dims (400,), latent_dim 20, bernoulli, beta 1, relu, float32."""
    model = VAE(3)
    assert model.get_config() == {
        "input_dim": 3,
        "hidden_dims": [400],
        "latent_dim": 20,
        "likelihood": "bernoulli",
        "beta": 1.0,
        "activation": "relu",
        "dtype": "float32",
    }
    assert model.kind == "VAE" and model.generative


def test_beta_zero_is_a_plain_reconstruction_objective_and_negative_beta_is_refused():
    """beta = 0 is allowed (loss = reconstruction); beta < 0 raises ValueError naming beta."""
    model = VAE(5, (4,), 2, beta=0.0, dtype=np.float64, rng=0)
    batch, eps = _batch(model)
    parts = model.loss_parts(batch[0], eps=eps)
    assert parts["kl"] > 0 and parts["loss"] == pytest.approx(parts["reconstruction"])
    with pytest.raises(ValueError, match="beta"):
        VAE(5, (4,), 2, beta=-0.1)


def test_rng_of_loss_parts_and_loss_and_gradients_draws_the_noise():
    """Same rng seed, same numbers; another seed, other numbers; eps given, rng has no effect."""
    model = VAE(5, (4,), 2, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).random((6, 5))
    for f in (
        lambda **kw: model.loss_parts(x, **kw)["loss"],
        lambda **kw: model.loss_and_gradients(x, **kw)[0],
        lambda **kw: model.loss(x, **kw),
    ):
        assert f(rng=7) == f(rng=7)
        assert f(rng=7) != f(rng=8)
        eps = np.random.default_rng(2).standard_normal((6, 2))
        assert f(eps=eps, rng=7) == f(eps=eps, rng=8)
    grads_7 = {k: g.copy() for k, g in model.loss_and_gradients(x, rng=7)[1].items()}
    grads_8 = model.loss_and_gradients(x, rng=8)[1]
    assert any(not np.array_equal(grads_7[k], grads_8[k]) for k in grads_7)


def test_loss_parts_kl_per_dim_sums_to_the_kl_term():
    """kl_per_dim has one mean KL per latent dimension; they add up to the mean KL."""
    model = VAE(5, (4,), 3, dtype=np.float64, rng=0)
    batch, eps = _batch(model, n=5)
    parts = model.loss_parts(batch[0], eps=eps)
    assert parts["kl_per_dim"].shape == (3,)
    assert parts["kl_per_dim"].sum() == pytest.approx(parts["kl"], rel=1e-12)
    mu, log_var = model.encode(batch[0])
    expected = np.mean(0.5 * (np.exp(log_var) - 1 - log_var + mu**2), axis=0)
    np.testing.assert_allclose(parts["kl_per_dim"], expected, rtol=1e-10)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_log_likelihood_of_paired_rows_matches_the_reconstruction_term(likelihood):
    """log_likelihood(x, z) = -reconstruction at z = mu + std eps; mismatched rows are refused."""
    model = VAE(5, (4,), 2, likelihood=likelihood, dtype=np.float64, rng=0)
    batch, eps = _batch(model)
    x = batch[0]
    mu, log_var = model.encode(x)
    z = mu + np.exp(0.5 * log_var) * eps
    parts = model.loss_terms_for_batch(batch, eps=eps)
    np.testing.assert_allclose(model.log_likelihood(x, z), -parts["reconstruction"], rtol=1e-12)
    assert model.log_likelihood(x, z).shape == (4,)
    with pytest.raises(ValueError, match=r"^x has 4 rows but z has 3; pair one z with each x"):
        model.log_likelihood(x, z[:3])
    with pytest.raises(ValueError, match=r"^z has 3 features but 2 are expected"):
        model.log_likelihood(x, np.zeros((4, 3)))


def test_code_is_the_posterior_mean_and_terms_have_their_names():
    """code(x) is mu of encode(x); loss_terms_for_batch returns loss, reconstruction and kl."""
    model = VAE(5, (4,), 2, beta=2.0, dtype=np.float64, rng=0)
    batch, eps = _batch(model)
    np.testing.assert_array_equal(model.code(batch[0]), model.encode(batch[0])[0])
    terms = model.loss_terms_for_batch(batch, eps=eps)
    assert set(terms) == {"loss", "reconstruction", "kl"}
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + 2.0 * terms["kl"])
    parts = model.loss_parts(batch[0], eps=eps)
    assert parts["loss"] == pytest.approx(parts["reconstruction"] + 2.0 * parts["kl"], rel=1e-12)
    assert parts["kl"] == pytest.approx(float(np.mean(terms["kl"])), rel=1e-12)


def test_public_vae_methods_name_x_and_n_and_sample_in_the_model_dtype():
    """loss/loss_and_gradients call their input x; sample(n) needs n >= 1 and keeps float32."""
    model = VAE(5, (4,), 2, rng=0)
    for f in (model.loss, model.loss_and_gradients, model.loss_parts):
        with pytest.raises(ValueError, match=r"^x must be 2-D"):
            f(np.zeros(5))
    with pytest.raises(ValueError, match=r"^n must be >= 1"):
        model.sample(0)
    assert model.sample(3, rng=0).dtype == np.float32


@pytest.mark.parametrize("k", [1, 3])
def test_gaussian_decoder_log_variance_gets_no_gradient_at_or_below_its_floor(k):
    """decoder.log_var <= DECODER_LOG_VAR_MIN is floored: its gradient is exactly 0; above, not
    (the ELBO's step and the importance-weighted one)."""
    from vae_numpy.vae import DECODER_LOG_VAR_MIN

    model = VAE(4, (3,), 2, likelihood="gaussian", k=k, dtype=np.float64, rng=0)
    model.parameters()["decoder.log_var"][...] = [
        DECODER_LOG_VAR_MIN - 1.0,
        DECODER_LOG_VAR_MIN,
        DECODER_LOG_VAR_MIN + 0.5,
        0.0,
    ]
    batch, _ = _batch(model)
    eps = np.random.default_rng(1).standard_normal((k, 4, 2) if k > 1 else (4, 2))
    model.loss_and_gradients_for_batch(batch, eps=eps)
    grad = model.gradients()["decoder.log_var"]
    assert grad[0] == 0.0 and grad[1] == 0.0
    assert np.all(np.isfinite(grad)) and grad[2] != 0.0 and grad[3] != 0.0


def test_sample_decodes_standard_normal_codes_drawn_in_the_model_dtype():
    """sample(n, rng=s) = decode(z) with z = default_rng(s).standard_normal((n, latent), dtype)."""
    model = VAE(5, (4,), 2, rng=0)
    z = np.random.default_rng(3).standard_normal((4, 2), dtype=np.float32)
    np.testing.assert_array_equal(model.sample(4, rng=3), model.decode(z))


def test_constructor_errors_name_the_parameter_and_the_fix():
    """A bad likelihood, beta or k raises an error that starts with the parameter's name."""
    with pytest.raises(
        ValueError, match=r"^unknown likelihood 'poisson'; choose one of 'bernoulli', 'gaussian'$"
    ):
        VAE(5, (4,), 2, likelihood="poisson")
    with pytest.raises(ValueError, match=r"^beta must be a finite number >= 0, got -1\.0$"):
        VAE(5, (4,), 2, beta=-1.0)
    with pytest.raises(ValueError, match=r"^k must be >= 1, got 0$"):
        VAE(5, (4,), 2, k=0)
    with pytest.raises(TypeError, match=r"^k must be an integer, got 2\.5"):
        VAE(5, (4,), 2, k=2.5)


def test_float32_gaussian_vae_keeps_every_parameter_and_gradient_in_float32():
    """decoder.log_var and its gradient are float32 in a float32 model, before and after a step."""
    model = VAE(5, (4,), 2, likelihood="gaussian", rng=0)
    assert model.parameters()["decoder.log_var"].dtype == np.float32
    assert model.gradients()["decoder.log_var"].dtype == np.float32
    x = np.random.default_rng(0).normal(size=(3, 5))
    _, grads = model.loss_and_gradients(x, rng=0)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
    assert {p.dtype for p in model.parameters().values()} == {np.dtype(np.float32)}


def test_prior_log_density_sums_standard_normal_log_densities_in_float64():
    """prior_log_density(z) = sum_d norm.logpdf(z_d) in float64, and checks z's shape by name."""
    from scipy.stats import norm

    model = VAE(5, (4,), 3, rng=0)
    z = np.random.default_rng(0).normal(0, 2, (4, 3)).astype(np.float32)
    got = model.prior_log_density(z)
    assert got.dtype == np.float64 and got.shape == (4,)
    np.testing.assert_allclose(got, norm.logpdf(z.astype(np.float64)).sum(axis=1), rtol=1e-13)
    with pytest.raises(ValueError, match=r"^z has 2 features but 3 are expected"):
        model.prior_log_density(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"^z must be 2-D"):
        model.prior_log_density(np.zeros(3))


def _elbo_by_hand(model, x, eps):
    """ln p(x|z) - KL(q(z|x) || N(0, I)) for one noise draw eps, from encode and decode."""
    mu, log_var = model.encode(x)
    p = model.decode(mu + np.exp(log_var / 2) * eps)
    log_px = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    return log_px + 0.5 * np.sum(1 + log_var - mu**2 - np.exp(log_var), axis=1)


def test_elbo_for_batch_draws_one_sample_by_default_and_averages_several():
    """elbo_for_batch: one draw by default; with n_samples=2 the mean of the two single ELBOs."""
    model = VAE(5, (4,), 2, beta=3.0, dtype=np.float64, rng=0)  # the ELBO ignores beta
    x = np.random.default_rng(1).random((6, 5))
    one = np.random.default_rng(7).standard_normal((6, 2))
    np.testing.assert_allclose(
        model.elbo_for_batch((x,), rng=7), _elbo_by_hand(model, x, one), rtol=1e-12
    )
    two = np.random.default_rng(7).standard_normal((2, 6, 2))
    expected = (_elbo_by_hand(model, x, two[0]) + _elbo_by_hand(model, x, two[1])) / 2
    got = model.elbo_for_batch((x,), n_samples=2, rng=7)
    assert got.dtype == np.float64 and got.shape == (6,)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_elbo_for_batch_of_a_float32_model_averages_its_samples_in_float64():
    """The average over samples of a float32 model's ln p(x|z_s) is accumulated in float64."""
    model = VAE(5, (4,), 2, rng=0)
    params = model.parameters()
    params["encoder.2.W"][...] = 0.0  # mu = 0 and log_var = 0: z = eps and the KL is exactly 0
    params["encoder.2.b"][...] = 0.0
    x = np.random.default_rng(1).random((8, 5)).astype(np.float32)
    s = 16
    eps = np.random.default_rng(3).standard_normal((s, 8, 2), dtype=np.float32)
    log_px = model.log_likelihood(np.tile(x, (s, 1)), eps.reshape(s * 8, 2))  # float32
    expected = np.mean(log_px.reshape(s, 8).astype(np.float64), axis=0)
    got = model.elbo_for_batch(model.check_data(x), n_samples=s, rng=3)
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_noise_of_k_samples_per_row_has_shape_k_batch_latent_and_names_it():
    """With k > 1, drawn noise has shape (k, batch, latent_dim); a wrong eps is told that name."""
    model = VAE(5, (4,), 2, k=3, rng=0)
    batch = model.check_data(np.full((4, 5), 0.5))
    drawn = model.noise_for(batch, rng=0)
    assert drawn.shape == (3, 4, 2) and drawn.dtype == np.float32
    with pytest.raises(
        ValueError,
        match=r"^eps must have shape \(k, batch, latent_dim\) = \(3, 4, 2\), got \(4, 2\)$",
    ):
        model.noise_for(batch, np.zeros((4, 2)))


def test_forward_record_holds_z_the_terms_and_the_reconstruction_gradient():
    """The record's z, reconstruction, kl and beta by hand; d rec/d logits only for backward."""
    model = VAE(5, (4,), 2, beta=0.5, dtype=np.float64, rng=0)
    batch, eps = _batch(model)
    x = batch[0]
    mu, log_var = model.encode(x)
    z = mu + np.exp(log_var / 2) * eps
    logits = model.decoder_output(z)
    p = 1 / (1 + np.exp(-logits))
    bce = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    kl = -0.5 * np.sum(1 + log_var - mu**2 - np.exp(log_var), axis=1)
    plain = model.forward(batch, eps)
    assert plain.reconstruction_grad is None  # the default is the textbook pass
    for f in (plain, model.forward(batch, eps, for_backward=True)):
        np.testing.assert_allclose(f.z, z, rtol=1e-14)
        np.testing.assert_allclose(f.reconstruction, bce, rtol=1e-12)
        np.testing.assert_allclose(f.kl, kl, rtol=1e-12)
        assert f.beta == 0.5
    fast = model.forward(batch, eps, for_backward=True)
    np.testing.assert_allclose(fast.reconstruction_grad, p - x, rtol=1e-12, atol=1e-15)


def test_backward_uses_the_reconstruction_gradient_kept_in_the_record():
    """backward takes d rec/d logits from the record: doubled there, the decoder's grads double."""
    model = VAE(5, (4,), 2, dtype=np.float64, rng=0)
    batch, eps = _batch(model)
    f = model.forward(batch, eps, for_backward=True)
    model.zero_grad()
    model.backward(f)
    single = {k: g.copy() for k, g in model.gradients().items() if k.startswith("decoder.")}
    f.reconstruction_grad = 2 * f.reconstruction_grad
    model.zero_grad()
    model.backward(f)
    for k, g in single.items():
        assert np.any(g != 0)
        np.testing.assert_allclose(model.gradients()[k], 2 * g, rtol=1e-14)


def test_beta_override_reaches_the_importance_weighted_pass():
    """With k > 1 a training step's beta=b gives the loss and gradients of a model with beta=b."""
    a = VAE(5, (4,), 2, beta=1.0, k=3, dtype=np.float64, rng=0)
    ref = VAE(5, (4,), 2, beta=0.25, k=3, dtype=np.float64, rng=0)
    batch, _ = _batch(a)
    eps = np.random.default_rng(1).standard_normal((3, 4, 2))
    assert a.forward(batch, eps, beta=0.25).beta == 0.25
    assert a.forward(batch, eps).beta == 1.0
    a.zero_grad()
    loss_a, _ = a.loss_and_gradients_for_batch(batch, eps=eps, beta=0.25)
    loss_r, _ = ref.loss_and_gradients_for_batch(batch, eps=eps)
    assert loss_a == pytest.approx(loss_r, rel=1e-14)
    assert loss_a != pytest.approx(a.loss(batch[0], eps=eps), rel=1e-6)
    for k, g in ref.gradients().items():
        np.testing.assert_allclose(a.gradients()[k], g, rtol=1e-13, atol=1e-15)


def test_importance_weighted_terms_are_sample_averages_by_hand():
    """With k > 1: loss -IWAE_k, reconstruction mean_j -ln p(x|z_j), kl mean_j ln q/N(0, I)."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    model = VAE(5, (4,), 2, beta=0.5, k=3, dtype=np.float64, rng=0)
    batch, _ = _batch(model)
    x = batch[0]
    eps = np.random.default_rng(1).standard_normal((3, 4, 2))
    mu, log_var = model.encode(x)
    std = np.exp(log_var / 2)
    z = mu + std * eps  # (k, n, latent)
    p = model.decode(z.reshape(12, 2)).reshape(3, 4, 5)
    log_px = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=2)
    log_q = norm.logpdf(z, mu, std).sum(axis=2)
    log_prior = norm.logpdf(z).sum(axis=2)
    bound = logsumexp(log_px + 0.5 * (log_prior - log_q), axis=0) - np.log(3)
    terms = model.loss_terms_for_batch(batch, eps=eps)
    assert set(terms) == {"loss", "reconstruction", "kl"}
    np.testing.assert_allclose(terms["loss"], -bound, rtol=1e-12)
    np.testing.assert_allclose(terms["reconstruction"], -log_px.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(terms["kl"], (log_q - log_prior).mean(axis=0), rtol=1e-12)
    parts = model.loss_parts(x, eps=eps)
    assert set(parts) == {"loss", "reconstruction", "kl", "kl_per_dim"}
    assert parts["loss"] == pytest.approx(-bound.mean(), rel=1e-12)
    assert parts["reconstruction"] == pytest.approx(-log_px.mean(), rel=1e-12)
    assert parts["kl"] == pytest.approx((log_q - log_prior).mean(), rel=1e-12)
    closed_form = np.mean(0.5 * (np.exp(log_var) - 1 - log_var + mu**2), axis=0)
    np.testing.assert_allclose(parts["kl_per_dim"], closed_form, rtol=1e-12)
