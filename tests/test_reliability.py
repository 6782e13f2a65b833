"""Hardening: malformed input only ever raises clear ValueError/TypeError; extremes stay finite."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vae_numpy.autoencoder import Autoencoder
from vae_numpy.data import binarize, load_dataset, minibatches
from vae_numpy.distributions import log_normal_pdf, reparameterize
from vae_numpy.kl import kl_by_quadrature, kl_monte_carlo, kl_normal, kl_standard_normal
from vae_numpy.layers import Dense, mlp
from vae_numpy.losses import bernoulli_nll, gaussian_nll
from vae_numpy.optim import Adam, make_optimizer
from vae_numpy.vae import VAE

FUZZ_EXAMPLES = 300  # per target; the README quotes FUZZ_EXAMPLES * len(TARGETS)

_arrays = st.one_of(
    st.just(np.zeros((2, 16))),  # a valid batch, so that mixes of good and bad arguments occur
    st.just(np.zeros(16)),  # 1-D
    st.just(np.zeros((0, 16))),  # empty batch
    st.just(np.zeros((2, 3))),  # wrong feature count
    st.just(np.zeros((2, 16, 1))),  # 3-D
    st.just(np.full((2, 16), np.nan)),
    st.just(np.full((2, 16), np.inf)),
    st.just(np.full((2, 16), 255.0)),  # 0..255 pixels
    st.just(np.full((2, 16), -1.0)),
    st.just(np.array([["a"] * 16] * 2)),  # strings
    st.just(np.array([1 + 1j] * 16).reshape(1, 16)),  # complex
    st.just(np.empty((2, 16), dtype=object)),
    st.just([[0.5] * 16, [0.5] * 16]),  # nested list (acceptable)
    st.just([[0.5] * 16, [0.5] * 15]),  # ragged list
)
BAD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.just({}),
    st.just(np.float32(2.5)),
    _arrays,
)


def _vae():
    return VAE(16, (8,), 2, rng=0)


TARGETS = {
    "VAE()": lambda a, b: VAE(a, b),
    "VAE(likelihood, beta)": lambda a, b: VAE(16, (4,), 2, likelihood=a, beta=b),
    "VAE.loss": lambda a, b: _vae().loss(a, eps=b),
    "VAE.loss_and_gradients": lambda a, b: _vae().loss_and_gradients(a, rng=0),
    "VAE.encode": lambda a, b: _vae().encode(a),
    "VAE.decode": lambda a, b: _vae().decode(a),
    "VAE.sample": lambda a, b: _vae().sample(a, rng=0),
    "VAE.score": lambda a, b: _vae().score(a),
    "VAE.fit": lambda a, b: _vae().fit(np.zeros((4, 16)), epochs=a, batch_size=b, progress=False),
    "VAE.fit(X)": lambda a, b: _vae().fit(a, epochs=1, progress=False, optimizer=b),
    "Autoencoder()": lambda a, b: Autoencoder(16, a, 2, loss=b),
    "Autoencoder.loss": lambda a, b: Autoencoder(16, (4,), 2, rng=0).loss(a),
    "kl_normal": lambda a, b: kl_normal(a, b),
    "kl_standard_normal": lambda a, b: kl_standard_normal(a, b),
    "kl_by_quadrature": lambda a, b: kl_by_quadrature(0.0, a, b, 1.0),
    "kl_monte_carlo": lambda a, b: kl_monte_carlo(a, b, n=100),
    "reparameterize": lambda a, b: reparameterize(a, b),
    "log_normal_pdf": lambda a, b: log_normal_pdf(a, b, 0.0),
    "bernoulli_nll": lambda a, b: bernoulli_nll(a, b),
    "gaussian_nll": lambda a, b: gaussian_nll(a, 0.0, b),
    "Dense": lambda a, b: Dense(a, b),
    "Dense.forward": lambda a, b: Dense(16, 2).forward(a),
    "mlp": lambda a, b: mlp(a, b),
    "Adam": lambda a, b: Adam({"w": np.zeros(2)}, lr=a, eps=b),
    "make_optimizer": lambda a, b: make_optimizer(a, {"w": np.zeros(2)}, lr=b),
    "load_dataset": lambda a, b: load_dataset(a, b, download=False),
    "binarize": lambda a, b: binarize(a, rng=0),
    "minibatches": lambda a, b: list(minibatches(a, b)),
}


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=FUZZ_EXAMPLES)
@given(a=BAD, b=BAD)
def test_public_api_raises_only_clear_value_or_type_errors(name, a, b):
    """Any malformed input gives ValueError or TypeError with a message, or a valid result."""
    try:
        TARGETS[name](a, b)
    except (ValueError, TypeError) as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
    except FileNotFoundError as exc:  # load_dataset(download=False) of a real dataset name
        assert "put" in str(exc) or "download" in str(exc)


_logits = st.sampled_from([-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4])
_log_vars = st.sampled_from([-50.0, -20.0, 0.0, 20.0, 50.0])
_images = st.sampled_from(["zeros", "ones", "random", "binary"])


@settings(max_examples=1000)
@given(
    logit=_logits,
    log_var=_log_vars,
    mean=st.sampled_from([-1e3, 0.0, 1e3]),
    images=_images,
    batch=st.sampled_from([1, 2, 7, 64, 512]),
    likelihood=st.sampled_from(["bernoulli", "gaussian"]),
    seed=st.integers(0, 2**16),
)
def test_loss_and_gradients_stay_finite_at_extremes(
    logit, log_var, mean, images, batch, likelihood, seed
):
    """Logits of ±1e4, encoder log-variances of ±50, all-0/all-1 images, batches 1..512: finite."""
    rng = np.random.default_rng(seed)
    model = VAE(16, (8,), 2, likelihood=likelihood, rng=seed)
    params = model.parameters()
    params["encoder.2.b"][:2] = mean  # mu
    params["encoder.2.b"][2:] = log_var  # log sigma^2, clipped by the model to LOG_VAR_RANGE
    params["decoder.2.b"][...] = logit  # decoder output: logits (Bernoulli) or mean (Gaussian)
    x = {
        "zeros": np.zeros((batch, 16)),
        "ones": np.ones((batch, 16)),
        "random": rng.random((batch, 16)),
        "binary": (rng.random((batch, 16)) < 0.5).astype(float),
    }[images]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, grads = model.loss_and_gradients(x, rng=rng)
    assert np.isfinite(loss)
    for name, g in grads.items():
        assert np.isfinite(g).all(), name
