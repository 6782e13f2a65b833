"""Gradient-based optimisers bound to a dictionary of parameter arrays.

An optimiser is created with the live parameter arrays of a model (``model.parameters()``)
and updates them in place with ``step(grads)``, where ``grads`` has the same keys. Its state
(moment estimates, step counter) is keyed by the parameters' names, and ``state_dict()`` /
``load_state_dict()`` let training resume exactly.

* :class:`SGD`: ``v = momentum * v + g; theta -= lr * v`` (PyTorch's convention for momentum).
* :class:`Adagrad`: ``G += g^2; theta -= lr * g / (sqrt(G) + eps)`` (Duchi et al. 2011), the
  optimiser Kingma & Welling (2013) used.
* :class:`Adam`: Algorithm 1 of Kingma & Ba (2015) with bias-corrected moments.

Each ``step`` is written as the paper writes it. :class:`Adam` with ``fast=True`` (the default,
used by training) runs the same update through :func:`vae_numpy.kernels.adam_update`, in
place and cache-blocked, on every thread the matrix products use, and every optimiser zeroes state about to turn subnormal every
:data:`~vae_numpy.kernels.FLUSH_EVERY` steps (:func:`vae_numpy.kernels.flush_subnormals`).
Every number stays in the parameters' dtype.

References
----------
Kingma, D. P. & Ba, J. (2015). Adam: A Method for Stochastic Optimization. ICLR. arXiv:1412.6980.
Duchi, J., Hazan, E. & Singer, Y. (2011). Adaptive subgradient methods. JMLR 12.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._validation import check_choice, check_positive_float
from .kernels import FLUSH_EVERY, adam_update_spans, flush_subnormals

__all__ = ["Optimizer", "SGD", "Adagrad", "Adam", "OPTIMIZERS", "make_optimizer"]


class Optimizer:
    """Base class: holds the parameters, checks gradients, saves and restores state.

    Subclasses list their per-parameter state buffers in ``_buffers`` and their scalar
    hyperparameters in ``_hyper``; ``state_dict`` and ``load_state_dict`` handle both.
    """

    _buffers: tuple[str, ...] = ()
    _hyper: tuple[str, ...] = ("lr",)

    def __init__(self, params: Mapping[str, np.ndarray], lr: float) -> None:
        if not isinstance(params, Mapping) or not params:
            raise TypeError(
                "params must be a non-empty dict of name -> ndarray, e.g. model.parameters()"
            )
        for name, p in params.items():
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(
                    f"params[{name!r}] must be a floating-point ndarray, got {type(p).__name__}"
                )
        self.params = dict(params)
        self.lr = check_positive_float(lr, "lr")
        self.t = 0  # number of steps taken
        self.state: dict[str, dict[str, np.ndarray]] = {
            buf: {k: np.zeros_like(p) for k, p in self.params.items()} for buf in self._buffers
        }

    def _check_grads(self, grads: Mapping[str, np.ndarray]) -> None:
        if set(grads) != set(self.params):
            missing = sorted(set(self.params) - set(grads))
            extra = sorted(set(grads) - set(self.params))
            raise ValueError(
                f"grads keys differ from params: missing {missing}, unexpected {extra}"
            )
        for k, g in grads.items():
            if g.shape != self.params[k].shape:
                raise ValueError(
                    f"grads[{k!r}] has shape {g.shape}, params[{k!r}] has {self.params[k].shape}"
                )

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """Update every parameter in place from its gradient (one step, t -> t + 1)."""
        self._check_grads(grads)
        self.t += 1
        for name, theta in self.params.items():
            self._update(name, theta, grads[name])
        if self.t % FLUSH_EVERY == 0:
            flush_subnormals(a for buffers in self.state.values() for a in buffers.values())

    def _update(self, name: str, theta: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError  # pragma: no cover

    def state_dict(self) -> dict[str, Any]:
        """A copy of the state: type, hyperparameters, step count and buffers (plain arrays)."""
        return {
            "type": type(self).__name__,
            "t": self.t,
            "hyper": {h: getattr(self, h) for h in self._hyper},
            "buffers": {b: {k: v.copy() for k, v in d.items()} for b, d in self.state.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state produced by :meth:`state_dict` of the same optimiser type."""
        if state.get("type") != type(self).__name__:
            raise ValueError(
                f"state is for {state.get('type')!r}, this optimiser is {type(self).__name__}"
            )
        buffers = state["buffers"]
        for b in self._buffers:
            if set(buffers.get(b, {})) != set(self.params):
                raise ValueError(
                    f"state buffer {b!r} has keys {sorted(buffers.get(b, {}))}, "
                    f"expected {sorted(self.params)}"
                )
            for k, v in buffers[b].items():
                if np.shape(v) != self.params[k].shape:
                    raise ValueError(
                        f"state {b}[{k!r}] has shape {np.shape(v)}, expected {self.params[k].shape}"
                    )
                self.state[b][k][...] = v
        for h in self._hyper:
            setattr(self, h, state["hyper"][h])
        self.t = int(state["t"])

    def __repr__(self) -> str:
        hyper = ", ".join(f"{h}={getattr(self, h)!r}" for h in self._hyper)
        return f"{type(self).__name__}({hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum.

    ``v <- momentum * v + g``; ``theta <- theta - lr * v`` (plain SGD when momentum = 0).
    """

    _buffers = ("velocity",)
    _hyper = ("lr", "momentum")

    def __init__(self, params: Mapping[str, np.ndarray], lr: float, momentum: float = 0.0) -> None:
        self.momentum = check_positive_float(momentum, "momentum", allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        super().__init__(params, lr)

    def _update(self, name: str, theta: np.ndarray, g: np.ndarray) -> None:
        v = self.state["velocity"][name]
        v[...] = self.momentum * v + g
        theta -= self.lr * v


class Adagrad(Optimizer):
    """Adagrad: per-coordinate steps shrink with the accumulated squared gradients.

    ``G <- G + g^2``; ``theta <- theta - lr * g / (sqrt(G) + eps)``.
    """

    _buffers = ("sum_sq",)
    _hyper = ("lr", "eps")

    def __init__(
        self, params: Mapping[str, np.ndarray], lr: float = 1e-2, eps: float = 1e-10
    ) -> None:
        self.eps = check_positive_float(eps, "eps")
        super().__init__(params, lr)

    def _update(self, name: str, theta: np.ndarray, g: np.ndarray) -> None:
        G = self.state["sum_sq"][name]
        G += g * g
        theta -= self.lr * g / (np.sqrt(G) + self.eps)


class Adam(Optimizer):
    """Adam, Algorithm 1 of Kingma & Ba (2015).

    For step t = 1, 2, ... with gradient g:

    .. code-block:: text

        m_t = beta1 * m_{t-1} + (1 - beta1) * g          (first moment)
        v_t = beta2 * v_{t-1} + (1 - beta2) * g^2        (second moment)
        m_hat = m_t / (1 - beta1^t),  v_hat = v_t / (1 - beta2^t)   (bias correction)
        theta_t = theta_{t-1} - lr * m_hat / (sqrt(v_hat) + eps)

    Parameters
    ----------
    params : dict of str to ndarray
        The live parameter arrays, e.g. ``model.parameters()``.
    lr : float
        Step size alpha.
    betas : (float, float)
        Decay rates of the moment estimates, each in [0, 1).
    eps : float
        Added to sqrt(v_hat) in the denominator (> 0).
    fast : bool
        True (default): the same update through :func:`vae_numpy.kernels.adam_update`, in
        place and cache-blocked, large arrays split between the threads the thread policy
        chose (:func:`vae_numpy.kernels.adam_update_spans`; about 1.5x faster on one thread,
        equal to rounding: ``tests/test_kernels.py`` checks the two with hypothesis). False: the lines of :meth:`_update` as written, with
        temporary arrays.
    """

    _buffers = ("m", "v")
    _hyper = ("lr", "beta1", "beta2", "eps")

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        fast: bool = True,
    ) -> None:
        if not (isinstance(betas, tuple | list) and len(betas) == 2):
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, b in enumerate(betas):
            if not 0 <= check_positive_float(b, f"betas[{i}]", allow_zero=True) < 1:
                raise ValueError(f"betas[{i}] must be in [0, 1), got {b}")
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = check_positive_float(eps, "eps")
        self.fast = bool(fast)
        super().__init__(params, lr)
        self._scratch = {k: np.empty_like(p) for k, p in self.params.items()} if fast else {}

    def _update(self, name: str, theta: np.ndarray, g: np.ndarray) -> None:
        m, v, t = self.state["m"][name], self.state["v"][name], self.t
        b1, b2, lr, eps = self.beta1, self.beta2, self.lr, self.eps
        if self.fast:  # the lines below, in place and in cache-sized blocks
            adam_update_spans(
                theta, g, m, v, self._scratch[name], lr=lr, beta1=b1, beta2=b2, eps=eps, t=t
            )
            return
        m[...] = b1 * m + (1 - b1) * g  # biased first moment estimate
        v[...] = b2 * v + (1 - b2) * g**2  # biased second raw moment estimate
        m_hat = m / (1 - b1**t)  # bias-corrected first moment
        v_hat = v / (1 - b2**t)  # bias-corrected second moment
        theta -= lr * m_hat / (np.sqrt(v_hat) + eps)


OPTIMIZERS: dict[str, type[Optimizer]] = {"adam": Adam, "sgd": SGD, "adagrad": Adagrad}


def make_optimizer(name_or_instance: Any, params: Mapping[str, np.ndarray], lr: float) -> Optimizer:
    """An optimiser by name (``"adam"``, ``"sgd"``, ``"adagrad"``) bound to ``params``, or pass
    through an :class:`Optimizer` instance that is already bound to them."""
    if isinstance(name_or_instance, Optimizer):
        if set(name_or_instance.params) != set(params):
            raise ValueError(
                "the optimizer instance is bound to different parameters than the model's"
            )
        return name_or_instance
    check_choice(name_or_instance, "optimizer", tuple(OPTIMIZERS))
    return OPTIMIZERS[name_or_instance](params, lr=lr)
