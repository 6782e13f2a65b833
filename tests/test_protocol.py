"""The models satisfy the one protocol that train, evaluate, plots and the CLI use."""

import dataclasses

import numpy as np
import pytest

from vae_numpy.autoencoder import Autoencoder
from vae_numpy.base import BaseModel
from vae_numpy.cvae import ConditionalVAE
from vae_numpy.gmvae import GaussianMixtureVAE
from vae_numpy.models import load_model
from vae_numpy.protocol import GenerativeModel, LatentModel, Model, VariationalModel
from vae_numpy.ssvae import SemiSupervisedVAE
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


def test_a_training_step_adds_the_gradients_of_every_parameter():
    """loss_and_gradients_for_batch returns the mean loss and adds d loss/d theta into gradients()."""
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


# --- gradients add: every model's backward pass accumulates, zero_grad resets -------------------

MODEL_FACTORIES = {
    "vae": lambda: VAE(6, (5,), 2, dtype=np.float64, rng=0),
    "vae-gaussian": lambda: VAE(6, (5,), 2, likelihood="gaussian", dtype=np.float64, rng=0),
    "vae-k3": lambda: VAE(6, (5,), 2, k=3, dtype=np.float64, rng=0),
    "vae-k3-gaussian": lambda: VAE(6, (5,), 2, k=3, likelihood="gaussian", dtype=np.float64, rng=0),
    "ae-bce": lambda: Autoencoder(6, (5,), 2, dtype=np.float64, rng=0),
    "ae-mse": lambda: Autoencoder(6, (5,), 2, loss="mse", dtype=np.float64, rng=0),
    "cvae": lambda: ConditionalVAE(6, 3, (5,), 2, dtype=np.float64, rng=0),
    "gmvae": lambda: GaussianMixtureVAE(6, (5,), 2, n_components=4, dtype=np.float64, rng=0),
    "ssvae": lambda: SemiSupervisedVAE(6, 3, (5,), 2, dtype=np.float64, rng=0),
}


def _data(model):
    """A small batch for ``model``: (x,) or (x, y) (with an unlabelled row for M2)."""
    gen = np.random.default_rng(1)
    x = gen.random((5, 6))
    if getattr(model, "labelled", False):
        y = np.array([0, 1, 2, 1, -1 if isinstance(model, SemiSupervisedVAE) else 0])
        return (x, y)
    return (x,)


def _grads(model):
    return {k: g.copy() for k, g in model.gradients().items()}


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_a_training_step_twice_without_zero_grad_gives_twice_the_gradient(name):
    """Every model's backward adds into gradients(): two identical steps leave twice one step."""
    model = MODEL_FACTORIES[name]()
    batch = model.check_data(*_data(model))
    model.zero_grad()
    model.loss_and_gradients_for_batch(batch, rng=np.random.default_rng(7))
    once = _grads(model)
    assert all(np.any(g != 0) for g in once.values()), "every parameter gets a gradient"
    model.loss_and_gradients_for_batch(batch, rng=np.random.default_rng(7))  # same noise
    for k, g in model.gradients().items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-12, atol=1e-300, err_msg=k)
    model.zero_grad()
    assert all(not g.any() for g in model.gradients().values())


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_loss_and_gradients_twice_gives_the_same_gradients(name):
    """loss_and_gradients zeroes the gradients first: a second call does not add to the first."""
    model = MODEL_FACTORIES[name]()
    data = _data(model)
    noise = {"rng": 3} if model.generative else {}  # the autoencoder draws no noise
    loss1, grads1 = model.loss_and_gradients(*data, **noise)
    grads1 = {k: g.copy() for k, g in grads1.items()}
    loss2, grads2 = model.loss_and_gradients(*data, **noise)
    assert loss1 == loss2
    for k, g in grads2.items():
        np.testing.assert_array_equal(g, grads1[k], err_msg=k)


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_backward_twice_after_one_forward_gives_twice_the_gradient(name):
    """backward(record) reads the record of one forward pass and adds into gradients() each time."""
    model = MODEL_FACTORIES[name]()
    batch = model.check_data(*_data(model))
    record = model.forward(batch, model.noise_for(batch, rng=5), for_backward=True)
    model.zero_grad()
    model.backward(record)
    once = _grads(model)
    assert all(np.any(g != 0) for g in once.values()), "every parameter gets a gradient"
    model.backward(record)
    for k, g in model.gradients().items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-12, atol=1e-300, err_msg=k)


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_every_model_derives_from_the_one_base_class_and_returns_a_record(name):
    """Each model's only model base is BaseModel; forward returns a dataclass of named intermediates.

    A model may take methods from a part written in its own file (the VAE's importance-weighted
    passes, vae_numpy.iwae), but such a part is no second model design: it is not a BaseModel
    and has no forward, backward or loss_terms of its own.
    """
    model = MODEL_FACTORIES[name]()
    *parts, base = type(model).__bases__
    assert base is BaseModel
    for part in parts:
        assert not issubclass(part, BaseModel), part
        assert not any(hasattr(part, m) for m in ("forward", "backward", "loss_terms")), part
    batch = model.check_data(*_data(model))
    record = model.forward(batch, model.noise_for(batch, rng=5))
    assert dataclasses.is_dataclass(record)
    terms = model.loss_terms(record)
    assert all(v.shape == (len(batch[0]),) for v in terms.values())
    np.testing.assert_array_equal(terms["loss"], model.loss_terms_for_batch(batch, rng=5)["loss"])


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_a_training_step_is_forward_then_backward_of_its_record(name):
    """loss_and_gradients_for_batch gives the gradients of backward(forward(batch, eps))."""
    model = MODEL_FACTORIES[name]()
    batch = model.check_data(*_data(model))
    eps = model.noise_for(batch, rng=3)
    model.zero_grad()
    loss, _ = model.loss_and_gradients_for_batch(batch, eps=eps)
    step = _grads(model)
    model.zero_grad()
    model.backward(model.forward(batch, eps))  # a pass made without for_backward
    assert loss == pytest.approx(float(np.mean(model.loss_terms_for_batch(batch, eps=eps)["loss"])))
    for k, g in model.gradients().items():
        np.testing.assert_allclose(g, step[k], rtol=1e-10, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("name", ["cvae", "gmvae", "ssvae"])
def test_backward_with_row_weights_weighs_each_row(name):
    """backward(record, weights) is the gradient of sum_i weights_i loss_i: rows add up."""
    model = MODEL_FACTORIES[name]()
    batch = model.check_data(*_data(model))
    record = model.forward(batch, model.noise_for(batch, rng=5))
    n = len(batch[0])
    model.zero_grad()
    model.backward(record)  # the mean: 1/n each
    mean = _grads(model)
    total = {k: np.zeros_like(g) for k, g in mean.items()}
    for i in range(n):  # one row at a time, weight 1
        model.zero_grad()
        model.backward(record, np.eye(n)[i])
        for k, g in model.gradients().items():
            total[k] += g
    for k, g in total.items():
        np.testing.assert_allclose(g / n, mean[k], rtol=1e-10, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_load_model_round_trips_every_model_of_the_family(tmp_path, name):
    """Every model (and variant) saved and read by models.load_model: same class, config, arrays."""
    model = MODEL_FACTORIES[name]()
    loaded = load_model(model.save(tmp_path / f"{name}.npz"))
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    for k, p in model.parameters().items():
        np.testing.assert_array_equal(loaded.parameters()[k], p, err_msg=k)


@pytest.mark.parametrize("name", ["vae", "vae-k3", "cvae", "gmvae", "ssvae"])
def test_every_variational_model_follows_the_evaluation_protocol(name):
    """The models of the VAE family are VariationalModels; the autoencoder is not."""
    model = MODEL_FACTORIES[name]()
    assert isinstance(model, VariationalModel)
    assert model.conditional == (name == "cvae")
    assert not isinstance(MODEL_FACTORIES["ae-bce"](), VariationalModel)


def test_score_and_evaluate_terms_default_to_batches_of_1024_with_seed_0():
    """The defaults are what the docstrings say: more than 1024 rows are evaluated in two
    batches, with the noise of seed 0; other values change the noise and so the result."""
    from vae_numpy import train
    from vae_numpy.vae import VAE

    model = VAE(8, (6,), 2, rng=0)
    x = np.random.default_rng(1).random((1100, 8))
    default = model.evaluate_terms(x)
    assert default == model.evaluate_terms(x, batch_size=1024, rng=0)
    assert default == train.mean_loss_terms(model, model.check_data(x), batch_size=1024, rng=0)
    assert model.score(x) == -default["loss"] == model.score(x, batch_size=1024, rng=0)
    other = model.evaluate_terms(x, batch_size=7, rng=3)
    assert other == train.mean_loss_terms(model, model.check_data(x), batch_size=7, rng=3)
    assert other["loss"] != default["loss"]
    assert model.score(x, batch_size=7, rng=3) == -other["loss"]
    for f in (model.score, model.evaluate_terms):
        with pytest.raises(ValueError, match=r"^batch_size must be"):
            f(x, batch_size=0)


def test_loss_parts_names_the_batch_x_in_its_errors():
    from vae_numpy.vae import VAE

    with pytest.raises(ValueError, match=r"^x "):
        VAE(8, (6,), 2, rng=0).loss_parts(np.full((2, 8), 2.0))


def test_loss_draws_its_noise_from_rng_and_names_the_noise_axes_when_eps_is_wrong():
    from vae_numpy.vae import VAE

    model = VAE(8, (6,), 2, rng=0)
    x = np.random.default_rng(1).random((5, 8))
    assert model.loss(x, rng=3) == model.loss(x, rng=3) != model.loss(x, rng=4)
    assert model.loss(x, rng=3) == pytest.approx(model.loss_parts(x, rng=3)["loss"], rel=1e-6)
    with pytest.raises(ValueError, match=r"^eps must have shape \(batch, latent_dim\) = \(5, 2\)"):
        model.loss(x, eps=np.zeros((5, 3)))
