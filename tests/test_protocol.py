"""The models satisfy the one protocol that train, evaluate, plots and the CLI use."""

import numpy as np
import pytest

from vae_numpy.autoencoder import Autoencoder
from vae_numpy.models import load_model
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


@pytest.mark.parametrize(
    "make", [lambda: VAE(6, (5,), 2, rng=0), lambda: Autoencoder(6, (5,), 2, rng=0)]
)
def test_load_model_returns_the_class_that_saved_the_file(tmp_path, make):
    """models.load_model reads any saved model back as its own class, with equal parameters."""
    model = make()
    path = model.save(tmp_path / "m.npz")
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    for k, p in model.parameters().items():
        np.testing.assert_array_equal(loaded.parameters()[k], p)


def test_load_model_refuses_a_file_without_a_model(tmp_path):
    """A checkpoint or other .npz is refused with ValueError naming what it holds."""
    from vae_numpy.serialization import save_npz

    path = save_npz(tmp_path / "x.npz", {"a": np.zeros(2)}, {"kind": "checkpoint"})
    with pytest.raises(ValueError, match="checkpoint"):
        load_model(path)
