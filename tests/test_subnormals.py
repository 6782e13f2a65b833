"""No subnormal float reaches a matrix product when posteriors grow confident (STYLE point 19).

Each model is trained briefly on the digits, then set where a long run ends (a confident
classifier for M2, narrow mixture components for the GMVAE, a wide q(z|x) for VAE(k=5)), and
trained on with a spy that counts the subnormal numbers in the inputs of every matrix product:
those of the Dense layers and those the weights of a softmax reach. With
``kernels.flush_negligible`` the count is 0; with the flush replaced by the identity the same
spy finds them, so the test can fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from vae_numpy import gmvae, kernels, layers
from vae_numpy.data import load_dataset
from vae_numpy.gmvae import GaussianMixtureVAE
from vae_numpy.ssvae import SemiSupervisedVAE
from vae_numpy.vae import VAE


def count_subnormals(a: Any) -> int:
    """Number of entries of ``a`` that are neither 0 nor normal floats."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return 0
    return int(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)))


class MatmulSpy(np.ndarray):
    """An array whose element-wise descendants stay spies; counts subnormals fed to ``@``."""

    found = {"subnormals": 0, "products": 0}

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        plain = [a.view(np.ndarray) if isinstance(a, MatmulSpy) else a for a in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(
                o.view(np.ndarray) if isinstance(o, MatmulSpy) else o for o in kwargs["out"]
            )
        if ufunc is np.matmul:
            MatmulSpy.found["products"] += 1
            MatmulSpy.found["subnormals"] += sum(count_subnormals(a) for a in plain)
        result = getattr(ufunc, method)(*plain, **kwargs)
        return result.view(MatmulSpy) if isinstance(result, np.ndarray) else result


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count subnormal inputs of every Dense product and of every product a softmax reaches."""
    found = {"subnormals": 0, "products": 0}
    monkeypatch.setattr(MatmulSpy, "found", found)
    forward, backward_params = layers.Dense.forward, layers.Dense.backward_params

    def spied_forward(self: layers.Dense, x: np.ndarray) -> np.ndarray:
        found["subnormals"] += count_subnormals(x)
        return forward(self, x)

    def spied_backward_params(self: layers.Dense, grad_y: np.ndarray) -> None:
        found["subnormals"] += count_subnormals(grad_y) + count_subnormals(self._x)
        found["products"] += 1
        backward_params(self, grad_y)

    monkeypatch.setattr(layers.Dense, "forward", spied_forward)
    monkeypatch.setattr(layers.Dense, "backward_params", spied_backward_params)
    softmax = gmvae.softmax  # the responsibilities meet their products inside gmvae
    monkeypatch.setattr(gmvae, "softmax", lambda a, axis=-1: softmax(a, axis).view(MatmulSpy))
    return found


def _partial_labels(y: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    gen = np.random.default_rng(seed)
    keep = np.concatenate(
        [gen.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
    )
    partial = np.full(len(y), -1)
    partial[keep] = y[keep]
    return partial


def confident_m2(x: np.ndarray, y: np.ndarray) -> tuple[Any, tuple[np.ndarray, ...]]:
    """M2 trained briefly, its logits then scaled 100x: q(y|x) of the other classes underflows."""
    data = (x, _partial_labels(y, 10))
    model = SemiSupervisedVAE(64, 10, (32,), 4, activation="elu", rng=0)
    model.fit(*data, epochs=3, batch_size=100, lr=3e-3, rng=0, progress=False, threads=1)
    last = model.classifier.layers[-1].params
    last["W"] *= 100
    last["b"] *= 100
    return model, data


def confident_gmvae(x: np.ndarray, y: np.ndarray) -> tuple[Any, tuple[np.ndarray, ...]]:
    """A GMVAE whose 50 components are spread out and narrow (std 0.05): one-hot responsibilities."""
    model = GaussianMixtureVAE(64, (32,), 4, n_components=50, activation="elu", rng=0)
    model.fit(x, epochs=3, batch_size=100, lr=3e-3, rng=0, progress=False, threads=1)
    prior = model.parameters()
    prior["prior.log_var"][...] = -6.0
    prior["prior.mean"][...] = np.random.default_rng(1).standard_normal((50, 4))
    return model, (x,)


def confident_iwae(x: np.ndarray, y: np.ndarray) -> tuple[Any, tuple[np.ndarray, ...]]:
    """VAE(k=5) with q(z|x) widened (log_var + 4): one sample of five takes all the weight."""
    model = VAE(64, (32,), 4, k=5, activation="elu", rng=0)
    model.fit(x, epochs=3, batch_size=100, lr=3e-3, rng=0, progress=False, threads=1)
    model.encoder.layers[-1].params["b"][4:] += 4.0  # the log_var half of [mu | log_var]
    return model, (x,)


MODELS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[Any, tuple[np.ndarray, ...]]]] = {
    "m2": confident_m2,
    "gmvae": confident_gmvae,
    "iwae_k5": confident_iwae,
}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y, _ = load_dataset("digits")
    return x, y


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("flush", [True, False], ids=["flushed", "not_flushed"])
def test_no_subnormal_reaches_a_matrix_product_once_posteriors_are_confident(
    name, flush, digits, spy, monkeypatch
):
    """Training a confident model feeds 0 subnormals to products; without the flush, many."""
    model, data = MODELS[name](*digits)
    if not flush:
        monkeypatch.setattr(kernels, "flush_negligible", lambda w, axis=-1: w)
    model.fit(*data, epochs=1, batch_size=100, lr=1e-4, rng=1, progress=False, threads=1)
    assert spy["products"] > 0, "the spy saw no matrix product"
    if flush:
        assert spy["subnormals"] == 0, f"{spy['subnormals']} subnormal inputs reached products"
    else:
        assert spy["subnormals"] > 100, "the unflushed confident model should underflow"


@pytest.mark.parametrize("name", list(MODELS))
def test_flush_changes_loss_and_gradients_only_by_float32_rounding(name, digits, monkeypatch):
    """On a confident batch, loss and every gradient agree with and without the flush."""
    model, data = MODELS[name](*digits)
    batch = tuple(a[:200] for a in data)
    flushed_loss, grads = model.loss_and_gradients(*batch, rng=5)
    flushed = {k: g.copy() for k, g in grads.items()}
    monkeypatch.setattr(kernels, "flush_negligible", lambda w, axis=-1: w)
    raw_loss, raw = model.loss_and_gradients(*batch, rng=5)
    assert flushed_loss == pytest.approx(raw_loss, rel=1e-6)
    for k, g in raw.items():
        scale = float(np.max(np.abs(g))) or 1.0
        np.testing.assert_allclose(flushed[k], g, rtol=1e-5, atol=1e-6 * scale, err_msg=k)
