"""The conditional VAE: whole-objective gradients, the loss by hand, conditional generation, files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import seeds
from vae_numpy.cvae import ConditionalVAE
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
