"""The models satisfy the one protocol that train, evaluate, plots and the CLI use."""

import numpy as np
import pytest

from vae_numpy.autoencoder import Autoencoder
from vae_numpy.protocol import GenerativeModel, LatentModel, Model
from vae_numpy.vae import VAE


@pytest.mark.parametrize("model", [VAE(6, (5,), 2, rng=0), Autoencoder(6, (5,), 2, rng=0)])
def test_models_satisfy_the_model_protocol(model):
    """VAE and Autoencoder offer every name of vae_numpy.protocol.Model and LatentModel."""
    assert isinstance(model, Model)
    assert isinstance(model, LatentModel)


def test_only_the_vae_is_generative():
    """The VAE can sample from its prior; the autoencoder says it cannot."""
    vae, ae = VAE(6, (5,), 2, rng=0), Autoencoder(6, (5,), 2, rng=0)
    assert vae.generative and isinstance(vae, GenerativeModel)
    assert not ae.generative


def test_a_training_step_fills_the_gradients_of_every_parameter():
    """loss_and_gradients_for_batch returns the mean loss and leaves d loss/d theta in gradients()."""
    model = VAE(6, (5,), 2, dtype=np.float64, rng=0)
    batch = model.check_data(np.random.default_rng(1).random((4, 6)))
    loss, parts = model.loss_and_gradients_for_batch(batch, rng=np.random.default_rng(2))
    assert set(parts) == {"reconstruction", "kl"}
    assert loss == pytest.approx(parts["reconstruction"] + parts["kl"])
    grads = model.gradients()
    assert set(grads) == set(model.parameters())
    assert all(np.any(g != 0) for g in grads.values())
