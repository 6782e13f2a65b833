"""Optimisers, tested by what they must do rather than by a copy of their update formula."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import seeds
from vae_numpy.optim import SGD, Adagrad, Adam, make_optimizer


@settings(max_examples=50)
@given(seeds, st.floats(1e-4, 1e-1))
def test_adam_first_step_moves_every_coordinate_by_lr(seed, lr):
    """Bias correction makes Adam's first step equal lr * sign(g) in every coordinate."""
    rng = np.random.default_rng(seed)
    p = {"w": rng.standard_normal(20)}
    g = {"w": rng.choice([-1.0, 1.0], 20) * 10.0 ** rng.uniform(-3, 3, 20)}  # |g| in [1e-3, 1e3]
    start = p["w"].copy()
    Adam(p, lr=lr, eps=1e-12).step(g)  # eps far below the smallest |g|
    np.testing.assert_allclose(start - p["w"], lr * np.sign(g["w"]), rtol=1e-6)


@settings(max_examples=30)
@given(seeds, st.floats(1e-3, 1e3))
def test_adam_is_invariant_to_gradient_scale(seed, scale):
    """Multiplying every gradient by c > 0 leaves Adam's trajectory unchanged (up to eps)."""
    rng = np.random.default_rng(seed)
    p1 = {"w": rng.standard_normal(10)}
    p2 = {"w": p1["w"].copy()}
    o1, o2 = Adam(p1, lr=0.01, eps=1e-20), Adam(p2, lr=0.01, eps=1e-20)  # eps negligible
    for _ in range(5):
        g = rng.standard_normal(10)
        o1.step({"w": g})
        o2.step({"w": scale * g})
    np.testing.assert_allclose(p1["w"], p2["w"], rtol=1e-8, atol=1e-10)


def _quadratic(rng, d=5):
    """f(w) = 1/2 (w - w*)^T A (w - w*) with A symmetric positive definite."""
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    A = Q @ np.diag(np.linspace(0.5, 2.0, d)) @ Q.T
    w_star = rng.standard_normal(d)
    return A, w_star


@pytest.mark.parametrize(
    "make, steps",
    [
        (lambda p: SGD(p, lr=0.3), 300),
        (lambda p: SGD(p, lr=0.1, momentum=0.9), 500),
        (lambda p: Adagrad(p, lr=0.5), 2000),
        (lambda p: Adam(p, lr=0.05), 2000),
    ],
    ids=["sgd", "sgd_momentum", "adagrad", "adam"],
)
def test_optimizer_drives_convex_quadratic_to_its_minimum(make, steps):
    """Each optimiser reaches the minimiser of a well-conditioned convex quadratic."""
    rng = np.random.default_rng(0)
    A, w_star = _quadratic(rng)
    p = {"w": np.zeros(5)}
    opt = make(p)
    for _ in range(steps):
        opt.step({"w": A @ (p["w"] - w_star)})
    np.testing.assert_allclose(p["w"], w_star, atol=1e-3)


def test_sgd_momentum_matches_hand_unrolled_two_steps():
    """Two steps with momentum 0.9, lr 0.1 from w=1 with gradients 2 then 4 end at w = 0.02."""
    p = {"w": np.array([1.0])}
    opt = SGD(p, lr=0.1, momentum=0.9)
    opt.step({"w": np.array([2.0])})  # v = 2,           w = 1 - 0.2 = 0.8
    assert p["w"][0] == pytest.approx(0.8)
    opt.step({"w": np.array([4.0])})  # v = 0.9*2 + 4 = 5.8, w = 0.8 - 0.58 = 0.22
    assert p["w"][0] == pytest.approx(0.22)


def test_adagrad_first_step_moves_by_lr():
    """Adagrad's first step is lr * g / |g| = lr * sign(g)."""
    p = {"w": np.array([0.0, 0.0])}
    Adagrad(p, lr=0.5).step({"w": np.array([3.0, -0.2])})
    np.testing.assert_allclose(p["w"], [-0.5, 0.5], rtol=1e-9)


@pytest.mark.parametrize("cls", [SGD, Adagrad, Adam])
def test_state_round_trip_continues_identically(cls):
    """Saving the state after 3 steps and loading it into a fresh optimiser continues bit for bit."""
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal((3, 2)).astype(np.float32) for _ in range(6)]
    p1 = {"w": np.ones((3, 2), np.float32)}
    kw = {"lr": 0.1, "momentum": 0.5} if cls is SGD else {"lr": 0.1}
    o1 = cls(p1, **kw)
    for g in grads[:3]:
        o1.step({"w": g})
    state = o1.state_dict()
    p2 = {"w": p1["w"].copy()}
    o2 = cls(p2, **kw)
    o2.load_state_dict(state)
    for g in grads[3:]:
        o1.step({"w": g})
        o2.step({"w": g})
    np.testing.assert_array_equal(p1["w"], p2["w"])
    assert o2.t == 6


@pytest.mark.parametrize("cls", [SGD, Adagrad, Adam])
def test_optimizer_keeps_float32(cls):
    """Parameters and state stay float32 after steps."""
    p = {"w": np.ones(4, np.float32)}
    opt = cls(p, lr=0.1)
    opt.step({"w": np.full(4, 0.5, np.float32)})
    assert p["w"].dtype == np.float32
    assert all(a.dtype == np.float32 for d in opt.state.values() for a in d.values())


def test_optimizers_reject_bad_arguments():
    """Bad learning rates, betas, names and mismatched gradients raise clear errors."""
    p = {"w": np.zeros(3)}
    with pytest.raises(ValueError, match="lr"):
        Adam(p, lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="momentum"):
        SGD(p, lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="'adam'"):
        make_optimizer("rmsprop", p, lr=0.1)
    with pytest.raises(ValueError, match="missing"):
        Adam(p).step({"v": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        Adam(p).step({"w": np.zeros(4)})
    with pytest.raises(TypeError, match="params"):
        Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="is for"):
        Adam(p).load_state_dict(SGD(p, lr=0.1).state_dict())


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_decaying_state_never_becomes_subnormal(cls):
    """A gradient that turns to zero lets the moments decay to 0 without subnormal floats."""
    p = {"w": np.ones(1000, np.float32)}
    opt = cls(p, lr=1e-3, momentum=0.9) if cls is SGD else cls(p, lr=1e-3)
    opt.step({"w": np.full(1000, 0.5, np.float32)})
    zero = {"w": np.zeros(1000, np.float32)}
    tiny = np.finfo(np.float32).tiny
    for _ in range(1500):  # 0.9**1500 would pass through the subnormal range
        opt.step(zero)
        for buffers in opt.state.values():
            a = buffers["w"]
            assert not np.any((a != 0) & (np.abs(a) < tiny)), f"subnormal state at step {opt.t}"
