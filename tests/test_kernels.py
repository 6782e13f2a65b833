"""Each fast kernel equals its textbook twin (vae_numpy.functional, Adam(fast=False)) to rounding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import seeds
from vae_numpy import functional, kernels
from vae_numpy.optim import SGD, Adagrad, Adam

dtypes = st.sampled_from([np.float32, np.float64])
shapes = st.tuples(st.integers(1, 6), st.integers(1, 9))


def _tol(dtype: type) -> float:
    return float(np.finfo(dtype).eps)


@given(seeds, shapes, dtypes, st.sampled_from([0.5, 5.0, 50.0]), st.booleans())
def test_fused_bernoulli_loss_and_gradient_equal_their_textbook_twins(
    seed, shape, dtype, scale, binary
):
    """One-tanh bernoulli_nll_and_grad equals functional.bernoulli_nll and _grad to rounding."""
    gen = np.random.default_rng(seed)
    logits = (scale * gen.standard_normal(shape)).astype(dtype)
    x = gen.random(shape).astype(dtype)
    if binary:
        x = np.round(x)
    nll, grad = kernels.bernoulli_nll_and_grad(logits, x)
    ref_nll = functional.bernoulli_nll(logits, x)
    assert nll.shape == (shape[0],) and grad.shape == shape
    terms = np.sum(np.abs(logits) + np.log(2), axis=1)  # size of the summed terms
    np.testing.assert_array_less(np.abs(nll - ref_nll), 8 * _tol(dtype) * (terms + 1))
    np.testing.assert_allclose(
        grad, functional.bernoulli_nll_grad(logits, x), rtol=0, atol=4 * _tol(dtype)
    )


def test_fused_bernoulli_loss_is_exact_at_huge_logits():
    """At |l| = 1e4 the fused loss is |l| for the wrong label and 0 for the right one."""
    logits = np.array([[1e4, -1e4, 1e4, -1e4]], np.float32)
    x = np.array([[0.0, 1.0, 1.0, 0.0]], np.float32)
    nll, grad = kernels.bernoulli_nll_and_grad(logits[:, :2], x[:, :2])
    assert nll[0] == pytest.approx(2e4)
    np.testing.assert_array_equal(grad, [[1.0, -1.0]])
    nll, grad = kernels.bernoulli_nll_and_grad(logits[:, 2:], x[:, 2:])
    assert nll[0] == 0.0 and not grad.any()


@settings(max_examples=30)
@given(seeds, dtypes, st.integers(1, 40), st.sampled_from([1, 3, 7, 1 << 16]), st.integers(1, 5))
def test_blocked_adam_equals_algorithm_1_line_by_line(seed, dtype, size, block, steps):
    """Adam(fast=True) follows Adam(fast=False) to rounding over several steps, any block size."""
    gen = np.random.default_rng(seed)
    theta = {"w": gen.standard_normal((size, 2)).astype(dtype), "b": gen.standard_normal(3)}
    theta["b"] = theta["b"].astype(dtype)
    fast_p = {k: v.copy() for k, v in theta.items()}
    slow_p = {k: v.copy() for k, v in theta.items()}
    kw = {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-3}
    fast, slow = Adam(fast_p, fast=True, **kw), Adam(slow_p, fast=False, **kw)
    original = kernels.ADAM_BLOCK
    kernels.ADAM_BLOCK = block
    try:
        for _ in range(steps):
            g = {k: gen.standard_normal(v.shape).astype(dtype) for k, v in theta.items()}
            fast.step(g)
            slow.step(g)
    finally:
        kernels.ADAM_BLOCK = original
    for k in theta:
        assert fast_p[k].dtype == dtype
        np.testing.assert_allclose(fast_p[k], slow_p[k], rtol=50 * _tol(dtype), atol=1e-6)
        for buf in ("m", "v"):
            np.testing.assert_allclose(
                fast.state[buf][k], slow.state[buf][k], rtol=50 * _tol(dtype), atol=1e-7
            )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flush_subnormals_zeroes_only_values_about_to_become_subnormal(dtype):
    """Values with |a| < tiny * 2**(nmant + 1) become exactly 0; the threshold and above stay."""
    info = np.finfo(dtype)
    t = info.tiny * 2.0 ** (info.nmant + 1)  # 2.0e-31 in float32
    a = np.array([0.9 * t, -0.9 * t, t, 1.1 * t, -1.1 * t, 1.0, 0.0], dtype)
    kept = a.copy()
    kernels.flush_subnormals([a])
    np.testing.assert_array_equal(a, [0.0, 0.0, *kept[2:]])


@settings(max_examples=50)
@given(seeds, st.sampled_from([np.float32, np.float64]), st.integers(2, 12), st.floats(0, 200))
def test_flush_negligible_keeps_what_a_sum_registers_and_zeroes_subnormals(
    seed, dtype, width, spread
):
    """Weights >= 1e-20 of their row's largest (and normal) stay bit for bit; the rest become 0."""
    rng = np.random.default_rng(seed)
    tiny = np.finfo(dtype).tiny
    # softmax-like rows whose logits span up to `spread` nats, one row per planted tiny value
    planted = [tiny / 4, -tiny / 2, tiny, 1e-21, 1e-19, 3e-20, 0.0]
    w = np.exp(-rng.uniform(0, spread, (len(planted), width))).astype(dtype)
    w[:, 0] = 1
    w[:, -1] = planted
    before = w.copy()
    flushed = kernels.flush_negligible(w, axis=1)
    np.testing.assert_array_equal(w, before)  # a copy: the input is left as it was
    assert flushed.dtype == w.dtype and flushed.shape == w.shape
    kept = (np.abs(w) >= kernels.NEGLIGIBLE * np.abs(w).max(axis=1, keepdims=True)) & (
        np.abs(w) >= tiny
    )
    np.testing.assert_array_equal(flushed[kept], w[kept])
    assert not flushed[~kept].any()
    assert not np.any((flushed != 0) & (np.abs(flushed) < tiny)), "a subnormal survived"
    # what is zeroed is far below what a float32 (float64) sum registers: row sums agree
    np.testing.assert_allclose(flushed.sum(axis=1), w.sum(axis=1), rtol=np.finfo(dtype).eps)


def test_flush_negligible_works_along_the_given_axis():
    """Along axis 0 each column is a row of weights (VAE(k)'s k samples per example)."""
    w = np.array([[1.0, 1e-30], [1e-30, 1e-31]], np.float32)
    np.testing.assert_array_equal(
        kernels.flush_negligible(w, axis=0), np.array([[1.0, 1e-30], [0.0, 1e-31]], np.float32)
    )


def test_kernel_constants_are_the_documented_ones():
    """Adam works on blocks of 2**16 values; optimisers flush every 64 steps; weights at 1e-20."""
    assert kernels.ADAM_BLOCK == 65536
    assert kernels.FLUSH_EVERY == 64
    assert kernels.NEGLIGIBLE == 1e-20


@pytest.mark.parametrize("make", [lambda p: SGD(p, 0.1, momentum=0.5), Adagrad, Adam])
def test_optimisers_flush_their_state_every_flush_every_steps(make):
    """State values near the subnormal range survive FLUSH_EVERY - 1 steps and are 0 after it."""
    p = {"w": np.zeros(2, np.float32)}
    opt = make(p)
    tiny = np.float32(1e-33)
    zero = {"w": np.zeros(2, np.float32)}
    for _ in range(kernels.FLUSH_EVERY - 1):
        for buffers in opt.state.values():
            buffers["w"][...] = tiny
        opt.step(zero)
    assert all(b["w"].all() for b in opt.state.values())  # not flushed yet
    for buffers in opt.state.values():
        buffers["w"][...] = tiny
    opt.step(zero)
    assert all(not b["w"].any() for b in opt.state.values())


def test_flush_negligible_zeroes_subnormals_whatever_the_row_holds():
    """A float32 entry below the smallest normal number is zeroed even where 1e-20 of its
    row's largest is smaller still; an entry exactly 1e-20 of its row's largest is kept."""
    w = np.array([[1e-30, 1e-39, 0.0]], dtype=np.float32)  # 1e-39 is subnormal in float32
    np.testing.assert_array_equal(kernels.flush_negligible(w), [[np.float32(1e-30), 0.0, 0.0]])
    edge = np.array([[1.0, kernels.NEGLIGIBLE, 0.5 * kernels.NEGLIGIBLE]])
    np.testing.assert_array_equal(kernels.flush_negligible(edge), [[1.0, kernels.NEGLIGIBLE, 0.0]])
