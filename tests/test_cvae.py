"""The conditional VAE: whole-objective gradients, the loss by hand, conditional generation, files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tests.strategies import seeds
from vae_numpy.cvae import ConditionalVAE, check_labels
from vae_numpy.data import load_dataset
from vae_numpy.gradcheck import check_model


@settings(max_examples=15)
@given(seeds, st.sampled_from(["elu", "tanh", "softplus", "sigmoid"]), st.integers(2, 4))
def test_cvae_gradients_match_central_differences(seed, activation, n_classes):
    """Every parameter gradient of the mean -ELBO(x|y) (fixed noise) matches central differences."""
    rng = np.random.default_rng(seed)
    model = ConditionalVAE(
        5, n_classes, (4, 3), 2, activation=activation, dtype=np.float64, rng=rng
    )
    x, y = rng.random((6, 5)), rng.integers(0, n_classes, 6)
    eps = rng.standard_normal((6, 2))
    # fourth-order differences with h = 1e-4: gradients far below the loss stay above rounding
    check_model(model, x, y, noise=eps, eps=1e-4, order=4).assert_ok(1e-6)


def test_cvae_loss_equals_independently_computed_negative_elbo():
    """loss = mean[BCE(x, decode(mu + std eps, y))] + mean KL, from encode/decode and the formula."""
    rng = np.random.default_rng(0)
    model = ConditionalVAE(6, 3, (5,), 2, dtype=np.float64, rng=1)
    x, y, eps = rng.random((7, 6)), rng.integers(0, 3, 7), rng.standard_normal((7, 2))
    mu, log_var = model.encode(x, y)
    p = model.decode(mu + np.exp(log_var / 2) * eps, y)
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
    kl = -0.5 * (1 + log_var - mu**2 - np.exp(log_var)).sum(axis=1)
    assert model.loss(x, y, eps=eps) == pytest.approx(np.mean(bce + kl), rel=1e-12)


def test_label_enters_both_networks():
    """Changing y changes q(z|x, y) and p(x|z, y): the label is an input of both networks."""
    model = ConditionalVAE(6, 3, (5,), 2, dtype=np.float64, rng=1)
    x, z = np.full((1, 6), 0.5), np.zeros((1, 2))
    assert not np.allclose(model.encode(x, 0)[0], model.encode(x, 2)[0])
    assert not np.allclose(model.decode(z, 0), model.decode(z, 2))


def test_analogies_decode_each_code_under_every_label():
    """analogies(x, y)[i, c] = decode(mu(x_i, y_i), c); the own-label column is the reconstruction."""
    rng = np.random.default_rng(0)
    model = ConditionalVAE(6, 4, (5,), 2, dtype=np.float64, rng=1)
    x, y = rng.random((3, 6)), np.array([0, 3, 1])
    grid = model.analogies(x, y)
    assert grid.shape == (3, 4, 6)
    np.testing.assert_allclose(grid[np.arange(3), y], model.reconstruct(x, y), rtol=1e-12)
    mu, _ = model.encode(x, y)
    np.testing.assert_allclose(grid[:, 2], model.decode(mu, 2), rtol=1e-12)


def test_sample_accepts_one_class_or_one_per_row_and_is_seeded():
    """sample(n, y=c) and sample(n, y=array) give (n, input_dim) probabilities; a seed repeats."""
    model = ConditionalVAE(6, 3, (5,), 2, rng=0)
    a = model.sample(4, y=1, rng=0)
    assert a.shape == (4, 6) and a.dtype == np.float32 and 0 <= a.min() <= a.max() <= 1
    np.testing.assert_array_equal(a, model.sample(4, y=np.ones(4, int), rng=0))
    np.testing.assert_array_equal(model.sample(5, rng=3), model.sample(5, rng=3))


@pytest.mark.parametrize(
    ("y", "error"),
    [
        (np.array([0, 5]), ValueError),
        (np.array([0.5, 1.0]), TypeError),
        (np.array([0]), ValueError),
    ],
)
def test_bad_labels_raise_clear_errors(y, error):
    """Labels out of range, non-integer or of the wrong length raise, naming y."""
    model = ConditionalVAE(6, 3, (5,), 2, rng=0)
    with pytest.raises(error, match="y"):
        model.loss(np.zeros((2, 6)), y)


def test_bad_noise_shape_raises():
    """eps of the wrong shape raises ValueError with the expected shape."""
    model = ConditionalVAE(6, 3, (5,), 2, rng=0)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        model.loss(np.zeros((2, 6)), [0, 1], eps=np.zeros((2, 3)))


def _nearest_centroid(x_train, y_train, x):
    centroids = np.stack([x_train[y_train == c].mean(axis=0) for c in range(10)])
    return np.argmin(((x[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)


def test_cvae_trained_on_digits_generates_the_requested_digit():
    """After training on digits, samples of class c are mostly classified as c by nearest centroid."""
    x, y, _ = load_dataset("digits")
    model = ConditionalVAE(64, 10, (64,), 4, activation="elu", rng=0)
    model.fit(x, y, epochs=15, batch_size=64, rng=0, progress=False)
    assert model.history_["loss"][-1] < model.history_["loss"][0] - 10
    labels = np.repeat(np.arange(10), 20)
    samples = model.sample(200, y=labels, rng=1)
    accuracy = np.mean(_nearest_centroid(x, y, samples) == labels)
    assert accuracy > 0.8, accuracy


def test_save_and_load_round_trip(tmp_path):
    """A saved model loads with the same configuration and the same loss on fixed noise."""
    rng = np.random.default_rng(0)
    model = ConditionalVAE(6, 3, (5,), 2, activation="elu", rng=0)
    x, y, eps = rng.random((4, 6)), np.array([0, 1, 2, 0]), rng.standard_normal((4, 2))
    path = model.save(tmp_path / "cvae")
    loaded = ConditionalVAE.load(path)
    assert loaded.get_config() == model.get_config()
    assert loaded.loss(x, y, eps=eps) == model.loss(x, y, eps=eps)
    with pytest.raises(ValueError, match="ConditionalVAE"):
        from vae_numpy.gmvae import GaussianMixtureVAE

        GaussianMixtureVAE.load(path)


# --- labels, defaults and messages ---------------------------------------------------------


def test_check_labels_accepts_integral_floats_and_refuses_fractions_and_non_finite():
    """Float labels such as 2.0 become int64; 2.5, nan and inf raise TypeError naming y."""
    out = check_labels(np.array([2.0, 0.0, 1.0], dtype=np.float32), 3, 3)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [2, 0, 1])
    for bad in ([2.5, 1.0], [np.nan, 1.0], [np.inf, 1.0]):
        with pytest.raises(TypeError, match="^y must hold integer class labels"):
            check_labels(np.array(bad), 2, 3)
    # an out-of-range float label is reported as the integer it stands for
    with pytest.raises(ValueError, match=r"^y has labels in \[0, 5\]; expected 0 \.\. 2$"):
        check_labels(np.array([0.0, 5.0]), 2, 3)


def test_unlabelled_rows_are_refused_unless_allowed():
    """-1 passes only with allow_unlabelled=True; the message names the allowed range."""
    np.testing.assert_array_equal(check_labels([-1, 2], 2, 3, allow_unlabelled=True), [-1, 2])
    with pytest.raises(ValueError, match=r"^y has labels in \[-1, 2\]; expected 0 \.\. 2$"):
        check_labels([-1, 2], 2, 3)
    with pytest.raises(ValueError, match=r"expected -1 \(unlabelled\) or 0 \.\. 2$"):
        check_labels([-2, 0], 2, 3, allow_unlabelled=True)
    model = ConditionalVAE(5, 3, (4,), 2, rng=0)
    with pytest.raises(ValueError, match=r"expected 0 \.\. 2$"):
        model.loss(np.zeros((2, 5)), np.array([-1, 0]))


def test_check_labels_returns_int64_input_without_a_copy():
    """int64 labels come back as the same memory; other integer dtypes become int64."""
    y = np.array([0, 2, 1], dtype=np.int64)
    assert np.shares_memory(check_labels(y, 3, 3), y)
    out = check_labels(np.array([0, 2, 1], dtype=np.int32), 3, 3)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [0, 2, 1])


def test_constructor_defaults():
    """Defaults: latent_dim 20, beta 1; beta = 0 (no KL weight) is accepted."""
    model = ConditionalVAE(5, 3)
    assert model.latent_dim == 20 and model.beta == 1.0
    assert ConditionalVAE(5, 3, (4,), 2, beta=0.0, rng=0).beta == 0.0
    assert ConditionalVAE(5, 3, (4,), 2, beta=0, rng=0).beta == 0.0


def test_bad_parameters_raise_errors_naming_them():
    """n_classes, beta and sample's n are named in the ValueError/TypeError they raise."""
    with pytest.raises(ValueError, match=r"^n_classes must be >= 1, got 0"):
        ConditionalVAE(5, 0)
    with pytest.raises(TypeError, match=r"^n_classes must be an integer"):
        ConditionalVAE(5, 2.5)
    with pytest.raises(ValueError, match=r"^beta must be a finite number >= 0, got -1"):
        ConditionalVAE(5, 3, beta=-1.0)
    model = ConditionalVAE(5, 3, (4,), 2, rng=0)
    with pytest.raises(ValueError, match=r"^n must be >= 1, got 0"):
        model.sample(0)
    with pytest.raises(TypeError, match=r"^n must be an integer"):
        model.sample(2.0)


# --- dtypes and sampling --------------------------------------------------------------------


def test_float32_model_computes_in_float32_and_reports_float64_bounds():
    """encode, decode and sample of a float32 model are float32; its ELBO and log weights float64."""
    rng = np.random.default_rng(0)
    model = ConditionalVAE(5, 3, (4,), 2, rng=0)
    x, y = rng.random((4, 5)).astype(np.float32), np.array([0, 1, 2, 1])
    mu, log_var = model.encode(x, y)
    assert mu.dtype == log_var.dtype == np.float32
    assert model.decode(mu, y).dtype == np.float32
    assert model.sample(3, rng=0).dtype == np.float32
    batch = model.check_data(x, y)
    elbo = model.elbo_for_batch(batch, rng=0)
    log_w = model.log_importance_weights(batch, 3, rng=0)
    assert elbo.dtype == log_w.dtype == np.float64
    assert elbo.shape == (4,) and log_w.shape == (3, 4)


def test_sample_decodes_standard_normal_codes_drawn_in_the_model_dtype():
    """sample(n, y=c, rng=s) = decode(default_rng(s).standard_normal((n, latent), dtype), c)."""
    model = ConditionalVAE(5, 3, (4,), 2, rng=0)
    z = np.random.default_rng(3).standard_normal((4, 2), dtype=np.float32)
    np.testing.assert_array_equal(model.sample(4, y=1, rng=3), model.decode(z, 1))


def test_sample_without_labels_draws_every_class():
    """sample(n) with no y draws a class per row, and every class (0 included) appears."""
    model = ConditionalVAE(5, 3, (4,), 2, dtype=np.float64, rng=0)
    model.parameters()["decoder.0.W"][:2] = 0  # the decoder ignores z: each class one image
    images = model.decode(np.zeros((3, 2)), np.arange(3))  # (class, input_dim)
    assert np.min(np.abs(images[:, None] - images[None]).sum(axis=2) + np.eye(3)) > 1e-3
    s = model.sample(60, rng=0)
    assert s.shape == (60, 5)
    dist = np.abs(s[:, None] - images[None]).sum(axis=2)  # (row, class)
    assert np.all(dist.min(axis=1) < 1e-12)  # every row is the image of one class
    assert set(np.argmin(dist, axis=1)) == {0, 1, 2}


# --- the forward record and the loss terms --------------------------------------------------


def test_forward_record_holds_the_pass_with_the_given_beta():
    """The record's y1 is one_hot(y), z = mu + exp(log_var/2) eps, and beta= weights the KL."""
    rng = np.random.default_rng(0)
    model = ConditionalVAE(5, 3, (4,), 2, dtype=np.float64, rng=1)
    x, y = (rng.random((4, 5)) < 0.5).astype(float), np.array([2, 0, 1, 2])
    eps = rng.standard_normal((4, 2))
    f = model.forward(model.check_data(x, y), eps, beta=0.5)
    assert f.y1.dtype == np.float64
    np.testing.assert_array_equal(f.y1, np.eye(3)[y])
    mu, log_var = model.encode(x, y)
    np.testing.assert_allclose(f.z, mu + np.exp(log_var / 2) * eps, rtol=1e-14)
    rec = -stats.bernoulli.logpmf(x, model.decode(f.z, y)).sum(axis=1)
    kl = 0.5 * (mu**2 + np.exp(log_var) - 1 - log_var).sum(axis=1)
    terms = model.loss_terms(f)
    assert f.beta == 0.5
    np.testing.assert_allclose(terms["reconstruction"], rec, rtol=1e-12)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-12)
    np.testing.assert_allclose(terms["loss"], rec + 0.5 * kl, rtol=1e-12)
    assert model.forward(model.check_data(x, y), eps).beta == model.beta == 1.0


def test_loss_parts_name_reconstruction_and_kl_which_add_up_to_the_loss():
    """loss_parts has keys loss, reconstruction, kl; with beta = 1 the two parts sum to the loss."""
    rng = np.random.default_rng(0)
    model = ConditionalVAE(5, 3, (4,), 2, dtype=np.float64, rng=1)
    x, y, eps = rng.random((4, 5)), np.array([2, 0, 1, 2]), rng.standard_normal((4, 2))
    parts = model.loss_parts(x, y, eps=eps)
    assert set(parts) == {"loss", "reconstruction", "kl"}
    assert parts["kl"] > 0
    assert parts["loss"] == pytest.approx(parts["reconstruction"] + parts["kl"], rel=1e-12)


# --- the bounds on ln p(x|y) -----------------------------------------------------------------


def _single_sample_elbo(model, x, y, eps):
    """ln p(x|z, y) (scipy Bernoulli) - KL (closed form) at z = mu + exp(log_var/2) eps."""
    mu, log_var = model.encode(x, y)
    p = model.decode(mu + np.exp(log_var / 2) * eps, y)
    kl = 0.5 * (mu**2 + np.exp(log_var) - 1 - log_var).sum(axis=1)
    return stats.bernoulli.logpmf(x, p).sum(axis=1) - kl


def test_elbo_for_batch_averages_over_samples_and_draws_one_by_default():
    """elbo_for_batch is the mean of single-sample ELBOs on the rng's sample-major noise; k = 1 default."""
    rng = np.random.default_rng(0)
    model = ConditionalVAE(5, 3, (4,), 2, dtype=np.float64, rng=1)
    x, y = (rng.random((3, 5)) < 0.5).astype(float), np.array([1, 0, 2])
    batch = model.check_data(x, y)
    eps = np.random.default_rng(5).standard_normal((2, 3, 2))
    one, two = (_single_sample_elbo(model, x, y, e) for e in eps)
    np.testing.assert_allclose(model.elbo_for_batch(batch, rng=5), one, rtol=1e-12)
    np.testing.assert_allclose(
        model.elbo_for_batch(batch, n_samples=2, rng=5), (one + two) / 2, rtol=1e-12
    )


def test_float32_elbo_accumulates_many_samples_in_float64():
    """A float32 model's 100000-sample ELBO agrees to 1e-7 with its float64 twin's explicit mean."""
    model = ConditionalVAE(5, 3, (4,), 2, rng=0)
    twin = ConditionalVAE(5, 3, (4,), 2, dtype=np.float64, rng=0)
    for name, p in twin.parameters().items():
        p[...] = model.parameters()[name]
    x, y = np.array([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1]], dtype=np.float32), np.array([0, 2])
    k = 100_000
    elbo = model.elbo_for_batch(model.check_data(x, y), n_samples=k, rng=3)
    eps = np.random.default_rng(3).standard_normal((k, 2, 2), dtype=np.float32)
    mu, log_var = twin.encode(x, y)
    z = (mu + np.exp(log_var / 2) * eps).reshape(2 * k, 2)
    p = twin.decode(z, np.tile(y, k)).reshape(k, 2, 5)
    log_px = (x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=2).mean(axis=0)
    kl = 0.5 * (mu**2 + np.exp(log_var) - 1 - log_var).sum(axis=1)
    # float32 accumulation of the k samples would be off by about 1e-5
    np.testing.assert_allclose(elbo, log_px - kl, rtol=1e-7)


def test_log_importance_weights_match_scipy_log_densities():
    """ln w = ln p(x|z, y) + ln N(z; 0, I) - ln q(z|x, y), each from scipy's log-pdfs."""
    rng = np.random.default_rng(0)
    model = ConditionalVAE(5, 3, (4,), 2, dtype=np.float64, rng=1)
    x, y = (rng.random((2, 5)) < 0.5).astype(float), np.array([2, 1])
    log_w = model.log_importance_weights(model.check_data(x, y), 3, rng=7)
    eps = np.random.default_rng(7).standard_normal((3, 2, 2))
    mu, log_var = model.encode(x, y)
    std = np.exp(log_var / 2)
    for j in range(3):
        z = mu + std * eps[j]
        log_px = stats.bernoulli.logpmf(x, model.decode(z, y)).sum(axis=1)
        log_prior = stats.norm.logpdf(z).sum(axis=1)
        log_q = stats.norm.logpdf(z, mu, std).sum(axis=1)
        np.testing.assert_allclose(log_w[j], log_px + log_prior - log_q, rtol=1e-10)
