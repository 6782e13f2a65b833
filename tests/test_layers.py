"""Dense layers and activations: gradients by central differences, shapes, dtypes, stability."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.strategies import batch_sizes, seeds, small_dims
from vae_numpy.gradcheck import check_layer
from vae_numpy.layers import (
    ACTIVATIONS,
    ELU,
    Dense,
    LeakyReLU,
    ReLU,
    Sequential,
    Sigmoid,
    Softplus,
    Tanh,
    mlp,
    sigmoid,
)

ACTIVATION_LAYERS = [ReLU, lambda: LeakyReLU(0.2), Tanh, Sigmoid, Softplus, lambda: ELU(1.3)]


def _away_from_kinks(rng, shape):
    """Inputs with |x| >= 0.05 so that ReLU's kink at 0 is never inside a difference step."""
    x = rng.standard_normal(shape)
    return np.where(x >= 0, x + 0.05, x - 0.05)


@settings(max_examples=60)
@given(seeds, batch_sizes, small_dims, small_dims, st.sampled_from(["uniform", "glorot", "he"]))
def test_dense_backward_matches_central_differences(seed, batch, n_in, n_out, init):
    """dL/dW, dL/db and dL/dx of Dense agree with central differences to 1e-6 (float64)."""
    rng = np.random.default_rng(seed)
    layer = Dense(n_in, n_out, rng=rng, dtype=np.float64, init=init)
    layer.params["b"][...] = rng.standard_normal(n_out)  # non-zero bias for every init
    check_layer(layer, rng.standard_normal((batch, n_in)), rng=rng).assert_ok(1e-6)


@pytest.mark.parametrize(
    "make", ACTIVATION_LAYERS, ids=["relu", "leaky_relu", "tanh", "sigmoid", "softplus", "elu"]
)
@settings(max_examples=30)
@given(seed=seeds, batch=batch_sizes, d=small_dims)
def test_activation_backward_matches_central_differences(make, seed, batch, d):
    """Each activation's input gradient agrees with central differences to 1e-6 (float64)."""
    rng = np.random.default_rng(seed)
    check_layer(make(), _away_from_kinks(rng, (batch, d)), rng=rng).assert_ok(1e-6)


@settings(max_examples=30)
@given(
    seeds, st.lists(st.integers(1, 5), min_size=2, max_size=4), st.sampled_from(sorted(ACTIVATIONS))
)
def test_mlp_backward_matches_central_differences(seed, sizes, activation):
    """A whole MLP's parameter and input gradients agree with central differences."""
    rng = np.random.default_rng(seed)
    net = mlp(sizes, activation, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, sizes[0]))
    # keep ReLU kinks out of the difference step: every hidden pre-activation |h| >= 1e-4
    h = x
    for layer in net.layers:
        h = layer.forward(h)
        if isinstance(layer, Dense):
            assume(np.min(np.abs(h)) > 1e-4)
    check_layer(net, x, rng=rng, eps=1e-5).assert_ok(1e-6)  # h = 1e-5: less rounding error


def test_elu_values_match_its_definition_without_overflow():
    """ELU(x) = x for x > 0 and alpha (e^x - 1) otherwise, exact for tiny and huge |x|."""
    x = np.array([[-1000.0, -1.0, -1e-12, 0.0, 2.0, 800.0]])
    expected = [[-0.5, 0.5 * (np.exp(-1) - 1), 0.5 * (-1e-12 + 0.5e-24), 0.0, 2.0, 800.0]]
    with np.errstate(all="raise"):
        np.testing.assert_allclose(ELU(0.5).forward(x), expected, rtol=1e-15)


def test_params_and_grads_share_keys_and_shapes():
    """Every layer's params and grads have the same keys and shapes (and MLP names are unique)."""
    net = mlp([6, 5, 4, 3], "tanh", rng=0)
    assert list(net.params) == ["0.W", "0.b", "2.W", "2.b", "4.W", "4.b"]
    assert net.params.keys() == net.grads.keys()
    for k in net.params:
        assert net.params[k].shape == net.grads[k].shape
    assert net.params["0.W"] is net.layers[0].params["W"]  # live arrays, not copies


@pytest.mark.parametrize("stack", [False, True])
def test_backward_adds_into_grads_and_zero_grad_resets_them(stack):
    """Dense and Sequential backward add into grads (+=): twice without zero_grad gives twice."""
    rng = np.random.default_rng(0)
    layer = Dense(3, 2, rng=rng, dtype=np.float64)
    net = Sequential(layer, ReLU(), Dense(2, 2, rng=1, dtype=np.float64)) if stack else layer
    x = rng.standard_normal((4, 3))
    g = rng.standard_normal((4, 2))
    net.forward(x)
    net.backward(g)
    once = {k: v.copy() for k, v in net.grads.items()}
    assert all(v.any() for v in once.values())
    net.forward(x)
    net.backward(g)
    for k in once:
        np.testing.assert_allclose(net.grads[k], 2 * once[k], rtol=1e-15, err_msg=k)
    net.zero_grad()
    assert all(not v.any() for v in net.grads.values())
    net.forward(x)
    net.backward(g)
    for k in once:  # after zero_grad, one backward gives one batch's gradient again
        np.testing.assert_array_equal(net.grads[k], once[k])


def test_a_layer_used_twice_receives_the_sum_of_both_gradients():
    """One Dense applied to two inputs: its grads after both backwards are the sum (chain rule)."""
    rng = np.random.default_rng(3)
    layer = Dense(3, 2, rng=0, dtype=np.float64)
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    g1, g2 = rng.standard_normal((4, 2)), rng.standard_normal((5, 2))
    layer.forward(x1)
    layer.backward(g1)
    layer.forward(x2)
    layer.backward(g2)
    np.testing.assert_allclose(layer.grads["W"], x1.T @ g1 + x2.T @ g2, rtol=1e-14)
    np.testing.assert_allclose(layer.grads["b"], g1.sum(0) + g2.sum(0), rtol=1e-14)


def test_backward_params_adds_the_same_grads_as_backward():
    """backward_params gives the parameter gradients of backward and returns no input gradient."""
    rng = np.random.default_rng(1)
    net = Sequential(
        Dense(3, 4, rng=0, dtype=np.float64), Tanh(), Dense(4, 2, rng=1, dtype=np.float64)
    )
    x, g = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    net.forward(x)
    net.backward(g)
    full = {k: v.copy() for k, v in net.grads.items()}
    net.zero_grad()
    net.forward(x)
    assert net.backward_params(g) is None
    for k in full:
        np.testing.assert_array_equal(net.grads[k], full[k])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_preserve_dtype(dtype):
    """float32 in gives float32 out (and float64 stays float64) through every layer and backward."""
    net = Sequential(
        Dense(4, 5, rng=0, dtype=dtype),
        *[make() for make in ACTIVATION_LAYERS],
        Dense(5, 3, rng=1, dtype=dtype),
    )
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(dtype)
    y = net.forward(x)
    assert y.dtype == dtype
    assert net.backward(np.ones_like(y)).dtype == dtype
    assert all(g.dtype == dtype for g in net.grads.values())


def test_sigmoid_and_softplus_are_stable_for_huge_inputs():
    """sigmoid and softplus give finite, correct values at |x| = 1e4 without warnings."""
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = sigmoid(x)
        sp = Softplus().forward(x)
        Sigmoid().forward(x)
    eps32 = np.finfo(np.float32).eps
    np.testing.assert_allclose(s, [[0.0, np.exp(-50.0), 0.5, 1.0, 1.0]], rtol=0, atol=eps32)
    assert s[0, 0] == 0.0 and s[0, -1] == 1.0
    np.testing.assert_allclose(sp, [[0.0, np.exp(-50.0), np.log(2), 50.0, 1e4]], rtol=1e-6)


def test_initialisations_have_documented_scales():
    """uniform: |W| <= 1/sqrt(in); glorot: var 2/(in+out); he: var 2/in (moment checks)."""
    n_in, n_out = 400, 300
    W = Dense(n_in, n_out, rng=0, init="uniform").params["W"]
    assert np.abs(W).max() <= 1 / np.sqrt(n_in)
    np.testing.assert_allclose(W.var(), 1 / (3 * n_in), rtol=0.02)
    np.testing.assert_allclose(
        Dense(n_in, n_out, rng=0, init="glorot").params["W"].var(), 2 / (n_in + n_out), rtol=0.02
    )
    he = Dense(n_in, n_out, rng=0, init="he")
    np.testing.assert_allclose(he.params["W"].var(), 2 / n_in, rtol=0.02)
    assert not he.params["b"].any()


def test_same_seed_gives_same_weights():
    """Initial weights depend only on rng."""
    a, b = mlp([5, 4, 3], rng=7), mlp([5, 4, 3], rng=7)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_layers_reject_bad_input_with_clear_messages():
    """Wrong shapes, dtypes, sizes and names raise errors that say what to do."""
    layer = Dense(3, 2, rng=0)
    with pytest.raises(ValueError, match=r"reshape"):
        layer.forward(np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        layer.forward(np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="astype"):
        layer.forward(np.ones((2, 3), np.float64))
    with pytest.raises(RuntimeError, match="before forward"):
        Dense(3, 2).backward(np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="in_features"):
        Dense(0, 2)
    with pytest.raises(TypeError, match="out_features"):
        Dense(3, 2.5)
    with pytest.raises(ValueError, match="'relu'"):
        mlp([3, 2], "relu6")
    with pytest.raises(ValueError, match="init"):
        Dense(3, 2, init="xavier")
    with pytest.raises(TypeError, match="dtype"):
        Dense(3, 2, dtype=np.int32)
    with pytest.raises(TypeError, match="Layer"):
        Sequential(Dense(3, 2), "relu")


def test_leaky_relu_default_slope_is_a_hundredth_and_slope_zero_is_relu():
    """LeakyReLU() multiplies negatives by 0.01 (forward and backward); slope 0 is ReLU; < 0 refused."""
    x = np.array([[-2.0, 3.0]])
    layer = LeakyReLU()
    np.testing.assert_array_equal(layer.forward(x), [[-0.02, 3.0]])
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), [[0.01, 1.0]])
    zero = LeakyReLU(0.0)
    np.testing.assert_array_equal(zero.forward(x), ReLU().forward(x))
    np.testing.assert_array_equal(zero.backward(np.ones_like(x)), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="slope"):
        LeakyReLU(-0.1)


def test_mlp_passes_init_and_final_activation_to_its_layers():
    """mlp(init="he") builds He-initialised Dense layers (zero bias); final_activation ends it."""
    net = mlp([3, 4, 2], "tanh", init="he", final_activation="sigmoid", rng=0, dtype=np.float64)
    kinds = [type(layer) for layer in net]
    assert kinds == [Dense, Tanh, Dense, Sigmoid]
    assert all(layer.init == "he" for layer in net if isinstance(layer, Dense))
    assert not net.params["0.b"].any() and not net.params["2.b"].any()
    y = net.forward(np.random.default_rng(0).standard_normal((5, 3)) * 10)
    assert np.all((y > 0) & (y < 1))
    linear = mlp([3, 4, 2], rng=0)
    assert [type(layer) for layer in linear] == [Dense, ReLU, Dense]
    assert linear[0].init == "uniform" and linear[0].dtype == np.float32
    with pytest.raises(ValueError, match="final_activation"):
        mlp([3, 2], final_activation="softmax")


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: Dense(0, 2), ValueError, r"^in_features must be >= 1"),
        (lambda: Dense(2, 0), ValueError, r"^out_features must be >= 1"),
        (lambda: Dense(2, 2, init="normal"), ValueError, r"^unknown init 'normal'; choose one of"),
        (lambda: Dense(2, 2, dtype=np.int32), TypeError, r"dtype=int32 is not supported"),
        (lambda: LeakyReLU("a"), TypeError, r"^slope must be a number"),
        (
            lambda: Sequential(Dense(2, 2), "relu"),
            TypeError,
            r"^layer 1 is a str, not a vae_numpy Layer",
        ),
        (lambda: mlp([3]), ValueError, r"^sizes needs at least \[in, out\], got \[3\]"),
        (lambda: mlp([3, 0]), ValueError, r"^sizes\[1\] must be >= 1"),
        (lambda: mlp([3, 2], "gelu"), ValueError, r"^unknown activation 'gelu'"),
    ],
)
def test_layers_name_the_bad_argument(call, error, message):
    """Bad layer arguments are refused with the argument's name."""
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("init", ["uniform", "glorot", "he"])
def test_dense_initialisations_keep_their_dtype_and_shapes(init):
    """Every init gives W (in, out) and b (out,) in the layer's dtype, and zero gradients."""
    layer = Dense(4, 3, rng=0, dtype=np.float64, init=init)
    assert layer.params["W"].shape == (4, 3) and layer.params["b"].shape == (3,)
    assert all(p.dtype == np.float64 for p in layer.params.values())
    assert all(not g.any() for g in layer.grads.values())
    assert repr(layer) == f"Dense(4, 3, init={init!r}, dtype=float64)"


def test_layers_are_callable_and_print_their_structure():
    """layer(x) is layer.forward(x); repr names each layer, Sequential lists them one per line."""
    x = np.array([[-1.0, 2.0]])
    np.testing.assert_array_equal(ReLU()(x), [[0.0, 2.0]])
    assert repr(ReLU()) == "ReLU()" and repr(LeakyReLU(0.2)) == "LeakyReLU(slope=0.2)"
    net = Sequential(Dense(2, 3, rng=0), Tanh())
    assert repr(net) == "Sequential(\n  Dense(2, 3, init='uniform', dtype=float32),\n  Tanh()\n)"
    assert len(net) == 2 and isinstance(net[1], Tanh) and list(net) == net.layers


def test_an_activation_first_in_a_stack_still_backpropagates_into_later_layers():
    """backward_params of a stack that starts with an activation fills the later Dense grads."""
    net = Sequential(Tanh(), Dense(2, 2, rng=0, dtype=np.float64))
    x, g = np.array([[0.3, -0.4]]), np.array([[1.0, 2.0]])
    net.forward(x)
    net.backward_params(g)
    np.testing.assert_allclose(net.grads["1.W"], np.tanh(x).T @ g)


@pytest.mark.parametrize("make", ACTIVATION_LAYERS + [lambda: Dense(2, 2)])
def test_backward_before_forward_is_a_runtime_error_naming_the_layer(make):
    """Every layer refuses backward before any forward, naming its class."""
    layer = make()
    with pytest.raises(
        RuntimeError, match=rf"^{type(layer).__name__}\.backward called before forward"
    ):
        layer.backward(np.ones((1, 2), np.float32))


def test_leaky_relu_uses_the_slope_at_zero_and_dense_explains_bad_input():
    """At x = 0 LeakyReLU's gradient is the slope; Dense names a non-array input's type and the fix."""
    layer = LeakyReLU(0.1)
    layer.forward(np.array([[0.0]]))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1))), [[0.1]])
    dense = Dense(3, 2)
    with pytest.raises(
        ValueError, match=r"got list; reshape a single example with x\.reshape\(1, -1\)$"
    ):
        dense.forward([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"got \(2, 4\); reshape"):
        dense.forward(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"^unknown final_activation 'softmax'"):
        mlp([3, 2], final_activation="softmax")


def test_he_initialisation_has_mean_zero():
    """He weights are N(0, 2/in): the sample mean is 0 within 4 standard errors."""
    W = Dense(400, 300, rng=1, init="he").params["W"].astype(np.float64)
    assert abs(W.mean()) < 4 * np.sqrt(2 / 400) / np.sqrt(W.size)


def test_pytorch_uniform_init_draws_biases_within_one_over_root_fan_in():
    """init="uniform": W and b from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch.nn.Linear."""
    layer = Dense(400, 300, rng=0, dtype=np.float64)
    bound = 1 / np.sqrt(400)
    for name in ("W", "b"):
        p = layer.params[name]
        assert np.all(np.abs(p) <= bound), name
        assert p.max() > 0.9 * bound and p.min() < -0.9 * bound, name  # the whole interval


def test_elu_defaults_to_alpha_one_and_names_a_bad_alpha():
    """ELU() is alpha = 1 (ELU(-1) = e^-1 - 1); a non-positive alpha is refused by name."""
    assert ELU().alpha == 1.0
    np.testing.assert_allclose(ELU().forward(np.array([[-1.0]])), [[np.expm1(-1.0)]], rtol=1e-15)
    with pytest.raises(ValueError, match="^alpha"):
        ELU(alpha=0.0)


def test_elu_gradient_at_zero_is_the_left_derivative_alpha():
    """At x = 0 the ELU's gradient is alpha (the left derivative), as PyTorch's elu_backward."""
    layer = ELU(alpha=0.5)
    layer.forward(np.array([[0.0, 1.0, -1.0]]))
    np.testing.assert_allclose(
        layer.backward(np.ones((1, 3))), [[0.5, 1.0, 0.5 * np.exp(-1.0)]], rtol=1e-15
    )
