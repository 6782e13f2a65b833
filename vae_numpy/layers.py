"""Dense layers and activations with hand-written backpropagation.

A layer is a small object with two methods:

* ``forward(x)`` computes the output for one batch and caches exactly what the backward pass
  needs (the input for :class:`Dense`, the output or a mask for the activations);
* ``backward(grad_y)`` reads that cache, **adds** the parameter gradients of this batch into
  ``grads`` (``+=``) and returns the gradient with respect to the input.

Gradient policy: accumulate, as micrograd and PyTorch do (and as assignment 01 teaches). A
parameter used twice receives the sum of both contributions, and the gradients of several
batches add up by themselves; a training step therefore starts with ``zero_grad()``, which
sets every gradient to zero. :class:`Sequential` and every model of the package follow the same
policy (the training loop of :mod:`vae_numpy.train` calls ``model.zero_grad()`` before each
step).

``backward_params(grad_y)`` adds into ``grads`` like ``backward`` but does not compute the input
gradient: the first layer of an encoder, whose input is data, skips the product that would
compute dL/dx (a third of that layer's backward cost).

Arrays are ``(batch, features)``. Every layer keeps the dtype it was built with (float32 by
default): a float32 batch goes in, a float32 batch comes out, and no float64 temporaries are
made on the way.

References
----------
He, K. et al. (2015). Delving deep into rectifiers. ICCV.
Glorot, X. & Bengio, Y. (2010). Understanding the difficulty of training deep feedforward
neural networks. AISTATS.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ._validation import check_choice, check_dtype, check_positive_float, check_positive_int
from .functional import sigmoid, softplus

__all__ = [
    "Layer",
    "Dense",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "Softplus",
    "ELU",
    "Sequential",
    "mlp",
    "ACTIVATIONS",
    "INITS",
    "sigmoid",
]

INITS = ("uniform", "glorot", "he")


class Layer:
    """Base class: empty ``params`` and ``grads``; subclasses define forward and backward."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward_params(self, grad_y: np.ndarray) -> None:
        """Add into ``grads`` as :meth:`backward` does, without returning the input gradient.

        The default runs :meth:`backward`; :class:`Dense` skips the product that computes dL/dx.
        """
        self.backward(grad_y)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def zero_grad(self) -> None:
        """Set every gradient to zero: call it before each step, since ``backward`` adds."""
        for g in self.grads.values():
            g.fill(0)

    def _need_cache(self, value: np.ndarray | None) -> np.ndarray:
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Fully connected layer ``y = x @ W + b``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and output.
    rng : numpy.random.Generator, int or None
        Source of the initial weights.
    dtype : np.float32 or np.float64
        Dtype of the parameters, gradients and outputs.
    init : {"uniform", "glorot", "he"}
        ``"uniform"``: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's default for ``nn.Linear``);
        ``"glorot"``: W ~ U(-sqrt(6/(in+out)), sqrt(6/(in+out))), b = 0;
        ``"he"``: W ~ N(0, 2/in), b = 0 (suits ReLU).

    Attributes
    ----------
    params : dict
        ``"W"`` of shape (in_features, out_features), ``"b"`` of shape (out_features,).
    grads : dict
        Same keys and shapes as ``params``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        rng: Any = None,
        dtype: Any = np.float32,
        init: str = "uniform",
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.dtype = check_dtype(dtype)
        self.init = check_choice(init, "init", INITS)
        gen = np.random.default_rng(rng)
        fan_in, fan_out = self.in_features, self.out_features
        shape = (fan_in, fan_out)
        if init == "uniform":
            bound = 1 / math.sqrt(fan_in)
            W = gen.uniform(-bound, bound, size=shape)
            b = gen.uniform(-bound, bound, size=fan_out)
        elif init == "glorot":
            bound = math.sqrt(6 / (fan_in + fan_out))
            W, b = gen.uniform(-bound, bound, size=shape), np.zeros(fan_out)
        else:
            W, b = gen.normal(0.0, math.sqrt(2 / fan_in), size=shape), np.zeros(fan_out)
        self.params = {"W": W.astype(self.dtype), "b": b.astype(self.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Return ``x @ W + b``, shape (batch, out_features); caches ``x`` for backward.

        Parameters
        ----------
        x : ndarray of shape (batch, in_features), dtype of the layer
        """
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.in_features:
            got = x.shape if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(
                f"Dense expects x of shape (batch, {self.in_features}), got {got};"
                " reshape a single example with x.reshape(1, -1)"
            )
        if x.dtype != self.dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but the layer is {self.dtype};"
                f" convert with x.astype(np.{self.dtype})"
            )
        self._x = x
        y = x @ self.params["W"]  # (batch, out)
        y += self.params["b"]  # broadcast over the batch
        return y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """Add dL/dW = x^T G and dL/db = sum_batch G into ``grads``; return dL/dx = G W^T.

        Parameters
        ----------
        grad_y : ndarray of shape (batch, out_features)
            G = dL/dy for the batch seen by the last ``forward``.

        Returns
        -------
        ndarray of shape (batch, in_features)
            dL/dx.
        """
        self.backward_params(grad_y)
        return grad_y @ self.params["W"].T  # (batch, out) @ (out, in) -> (batch, in)

    def backward_params(self, grad_y: np.ndarray) -> None:
        """Add dL/dW = x^T G and dL/db = sum_batch G into ``grads`` (no dL/dx)."""
        x = self._need_cache(self._x)
        self.grads["W"] += x.T @ grad_y  # (in, batch) @ (batch, out) -> (in, out)
        self.grads["b"] += grad_y.sum(axis=0)  # (out,)

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features}, init={self.init!r}, dtype={self.dtype})"


class ReLU(Layer):
    """max(x, 0); the gradient passes where the output is positive."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.maximum(x, 0)
        return self._y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        return grad_y * (self._need_cache(self._y) > 0)


class LeakyReLU(Layer):
    """x for x > 0, ``slope * x`` otherwise."""

    def __init__(self, slope: float = 0.01) -> None:
        super().__init__()
        self.slope = check_positive_float(slope, "slope", allow_zero=True)
        self._positive: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._positive = x > 0
        return np.where(self._positive, x, self.slope * x)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        return np.where(self._need_cache(self._positive), grad_y, self.slope * grad_y)

    def __repr__(self) -> str:
        return f"LeakyReLU(slope={self.slope})"


class Tanh(Layer):
    """tanh(x); dy/dx = 1 - y^2."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        y = self._need_cache(self._y)
        return grad_y * (1 - y * y)


class Sigmoid(Layer):
    """Logistic sigmoid (stable for large ``|x|``); dy/dx = y (1 - y)."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = sigmoid(x)
        return self._y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        y = self._need_cache(self._y)
        return grad_y * y * (1 - y)


class Softplus(Layer):
    """ln(1 + exp(x)) computed as ``logaddexp(0, x)`` (no overflow); dy/dx = sigmoid(x)."""

    def __init__(self) -> None:
        super().__init__()
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return softplus(x)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        return grad_y * sigmoid(self._need_cache(self._x))


class ELU(Layer):
    """Exponential linear unit (Clevert et al. 2016): x for x > 0, alpha (exp(x) - 1) otherwise.

    dy/dx = 1 for x > 0 and alpha exp(x) = y + alpha otherwise, so the backward pass reads the
    cached output only. ``expm1`` keeps small negative inputs exact, and ``minimum(x, 0)`` keeps
    large positive inputs from overflowing in the branch that ``where`` discards.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = check_positive_float(alpha, "alpha")
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0)))
        return self._y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        y = self._need_cache(self._y)
        return grad_y * np.where(y > 0, 1, y + self.alpha)  # y > 0 exactly where x > 0

    def __repr__(self) -> str:
        return f"ELU(alpha={self.alpha})"


ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "softplus": Softplus,
    "elu": ELU,
}


class Sequential(Layer):
    """Layers applied in order; parameters named ``"<index>.<key>"`` (e.g. ``"0.W"``, ``"2.b"``).

    ``params`` and ``grads`` are views onto the layers' own dicts: the arrays are the same
    objects, so an optimiser that updates ``params`` in place updates the layers.
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} is a {type(layer).__name__}, not a vae_numpy Layer")
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            for key in layer.params:
                self.params[f"{i}.{key}"] = layer.params[key]
                self.grads[f"{i}.{key}"] = layer.grads[key]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """Backpropagate through the layers in reverse; adds into every layer's ``grads``."""
        for layer in reversed(self.layers):
            grad_y = layer.backward(grad_y)
        return grad_y

    def backward_params(self, grad_y: np.ndarray) -> None:
        """As :meth:`backward`, but the first layer skips its input gradient (input is data)."""
        for layer in reversed(self.layers[1:]):
            grad_y = layer.backward(grad_y)
        self.layers[0].backward_params(grad_y)

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.zero_grad()

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"


def mlp(
    sizes: Sequence[int],
    activation: str = "relu",
    *,
    final_activation: str | None = None,
    init: str = "uniform",
    rng: Any = None,
    dtype: Any = np.float32,
) -> Sequential:
    """Build ``Dense → activation → ... → Dense`` from layer sizes.

    Parameters
    ----------
    sizes : sequence of int
        ``[in, hidden_1, ..., out]``, at least two entries.
    activation : str
        One of :data:`ACTIVATIONS` (``"relu"``, ``"leaky_relu"``, ``"tanh"``, ``"sigmoid"``,
        ``"softplus"``, ``"elu"``), placed after every Dense but the last.
    final_activation : str or None
        Activation after the last Dense (None: linear output).

    Returns
    -------
    Sequential
        Parameters named ``"0.W"``, ``"0.b"``, ``"2.W"``, ... (index of the Dense in the stack).
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least [in, out], got {sizes}")
    sizes = [check_positive_int(n, f"sizes[{i}]") for i, n in enumerate(sizes)]
    names = tuple(ACTIVATIONS)
    check_choice(activation, "activation", names)
    if final_activation is not None:
        check_choice(final_activation, "final_activation", names)
    gen = np.random.default_rng(rng)
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(Dense(n_in, n_out, rng=gen, dtype=dtype, init=init))
        last = i == len(sizes) - 2
        act = final_activation if last else activation
        if act is not None:
            layers.append(ACTIVATIONS[act]())
    return Sequential(*layers)
