"""The plain autoencoder: gradients, loss, and that training lowers its reconstruction error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import seeds
from vae_numpy.autoencoder import Autoencoder
from vae_numpy.data import load_dataset
from vae_numpy.gradcheck import check_model


@settings(max_examples=25)
@given(seeds, st.sampled_from(["bce", "mse"]), st.sampled_from(["tanh", "softplus", "sigmoid"]))
def test_autoencoder_gradients_match_central_differences(seed, loss, activation):
    """Every parameter gradient of the reconstruction loss matches central differences."""
    rng = np.random.default_rng(seed)
    model = Autoencoder(5, (4,), 2, loss=loss, activation=activation, dtype=np.float64, rng=rng)
    check_model(model, rng.random((3, 5)), eps=1e-4, order=4).assert_ok(1e-6)


def test_autoencoder_loss_equals_independent_bce_and_squared_error():
    """loss is the mean over examples of the summed BCE (or squared error) of the reconstruction."""
    x = np.random.default_rng(0).random((5, 6))
    bce_model = Autoencoder(6, (4,), 2, loss="bce", dtype=np.float64, rng=0)
    p = bce_model.reconstruct(x)
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1).mean()
    assert bce_model.loss(x) == pytest.approx(bce, rel=1e-12)
    mse_model = Autoencoder(6, (4,), 2, loss="mse", dtype=np.float64, rng=0)
    assert mse_model.loss(x) == pytest.approx(((mse_model.reconstruct(x) - x) ** 2).sum(1).mean())


def test_autoencoder_training_lowers_reconstruction_error_on_digits():
    """30 epochs on digits take the held-out BCE from about 44 to below 30 nats per image."""
    x, _, _ = load_dataset("digits")
    x_test, _, _ = load_dataset("digits", "test")
    model = Autoencoder(64, (64,), 2, rng=0)
    before = -model.score(x_test)
    model.fit(x, epochs=30, batch_size=64, rng=0, progress=False)
    after = -model.score(x_test)
    assert before > 40 and after < 30, (before, after)
    assert model.encode(x_test).shape == (len(x_test), 2)


def test_autoencoder_save_load_round_trip(tmp_path):
    """A loaded autoencoder gives identical codes and reconstructions; a VAE file is refused."""
    from vae_numpy.vae import VAE

    x = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    model = Autoencoder(6, (5,), 2, loss="mse", rng=0)
    loaded = Autoencoder.load(model.save(tmp_path / "ae"))
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
    with pytest.raises(ValueError, match="expected 'VAE'"):
        VAE.load(tmp_path / "ae.npz")


def test_autoencoder_rejects_unknown_loss():
    """An unknown loss name lists the valid ones."""
    with pytest.raises(ValueError, match="'bce', 'mse'"):
        Autoencoder(6, (5,), 2, loss="l1")


def test_autoencoder_refuses_noise_and_names_its_encoder_and_decoder_networks():
    """A deterministic model given eps raises TypeError; encoder/decoder are its named networks."""
    model = Autoencoder(6, (5,), 2, rng=0)
    x = np.random.default_rng(0).random((4, 6))
    with pytest.raises(TypeError, match="takes no eps"):
        model.loss(x, eps=np.zeros((4, 2)))
    assert model.encoder is model.networks["encoder"]
    assert model.decoder is model.networks["decoder"]
    assert list(model.parameters())[:2] == ["encoder.0.W", "encoder.0.b"]
