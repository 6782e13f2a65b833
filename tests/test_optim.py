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


def test_optimiser_defaults_are_the_documented_ones():
    """Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8), Adagrad(lr=1e-2, eps=1e-10), SGD momentum 0."""
    p = {"w": np.zeros(1)}
    adam, adagrad, sgd = Adam(p), Adagrad(p), SGD(p, 0.1)
    assert (adam.lr, adam.beta1, adam.beta2, adam.eps, adam.fast) == (1e-3, 0.9, 0.999, 1e-8, True)
    assert (adagrad.lr, adagrad.eps) == (1e-2, 1e-10)
    assert sgd.momentum == 0.0
    assert make_optimizer("adam", p, 0.5).lr == 0.5


@pytest.mark.parametrize("fast", [True, False])
def test_adam_adds_eps_to_the_root_of_the_corrected_second_moment(fast):
    """With eps comparable to g, two steps match Algorithm 1 computed by hand (eps's place)."""
    theta = {"w": np.array([1.0, -2.0])}
    opt = Adam(theta, lr=0.1, betas=(0.5, 0.75), eps=0.5, fast=fast)
    g1, g2 = np.array([1.0, -4.0]), np.array([3.0, 2.0])
    expected = theta["w"].copy()
    m = v = np.zeros(2)
    for t, g in enumerate((g1, g2), start=1):
        m = 0.5 * m + 0.5 * g
        v = 0.75 * v + 0.25 * g * g
        m_hat, v_hat = m / (1 - 0.5**t), v / (1 - 0.75**t)
        expected = expected - 0.1 * m_hat / (np.sqrt(v_hat) + 0.5)
        opt.step({"w": g})
    np.testing.assert_allclose(theta["w"], expected, rtol=1e-14)
    first = 1.0 - 0.1 * 1.0 / (1.0 + 0.5)  # t = 1: m_hat = g, sqrt(v_hat) = |g|
    one = {"w": np.array([1.0])}
    Adam(one, lr=0.1, eps=0.5, fast=fast).step({"w": np.array([1.0])})
    assert one["w"][0] == pytest.approx(first, rel=1e-14)


def test_adagrad_adds_eps_to_the_root_of_the_accumulated_squares():
    """G = g1^2 + g2^2 and theta -= lr g / (sqrt(G) + eps), with eps comparable to g."""
    theta = {"w": np.array([1.0])}
    opt = Adagrad(theta, lr=0.2, eps=0.5)
    opt.step({"w": np.array([2.0])})
    assert theta["w"][0] == pytest.approx(1.0 - 0.2 * 2.0 / (2.0 + 0.5), rel=1e-14)
    opt.step({"w": np.array([-1.0])})
    expected = 1.0 - 0.2 * 2.0 / 2.5 + 0.2 * 1.0 / (np.sqrt(5.0) + 0.5)
    assert theta["w"][0] == pytest.approx(expected, rel=1e-14)


def test_sgd_accepts_momentum_just_below_one_and_refuses_one():
    """momentum in [0, 1): 0 and 0.999 are accepted, 1 and -0.1 are refused."""
    p = {"w": np.zeros(1)}
    assert SGD(p, 0.1, momentum=0.0).momentum == 0.0
    assert SGD(p, 0.1, momentum=0.999).momentum == 0.999
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="momentum"):
            SGD(p, 0.1, momentum=bad)


@pytest.mark.parametrize("cls", [SGD, Adagrad, Adam])
def test_load_state_dict_refuses_mismatched_keys_shapes_and_types(cls):
    """A state for other parameter names, other shapes or another optimiser raises ValueError."""
    opt = cls({"w": np.zeros(3)}, 0.1)
    state = opt.state_dict()
    other = cls({"v": np.zeros(3)}, 0.1).state_dict()
    with pytest.raises(ValueError, match="keys"):
        opt.load_state_dict(other)
    wrong_shape = cls({"w": np.zeros(4)}, 0.1).state_dict()
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(wrong_shape)
    foreign = (SGD if cls is not SGD else Adam)({"w": np.zeros(3)}, 0.1).state_dict()
    with pytest.raises(ValueError, match="state is for"):
        opt.load_state_dict(foreign)
    opt.load_state_dict(state)  # its own state is fine


def test_step_refuses_gradients_with_other_keys_or_shapes():
    """grads must have the keys and shapes of params: missing, extra and reshaped are refused."""
    opt = SGD({"w": np.zeros(3)}, 0.1)
    with pytest.raises(ValueError, match=r"missing \['w'\], unexpected \['v'\]"):
        opt.step({"v": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        opt.step({"w": np.zeros(4)})


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: SGD({}, 0.1), TypeError, r"^params must be a non-empty dict"),
        (lambda: SGD([np.zeros(1)], 0.1), TypeError, r"^params must be a non-empty dict"),
        (
            lambda: SGD({"w": np.zeros(1, int)}, 0.1),
            TypeError,
            r"^params\['w'\] must be a floating",
        ),
        (lambda: SGD({"w": np.zeros(1)}, 0.0), ValueError, r"^lr must be a finite number > 0"),
        (
            lambda: Adagrad({"w": np.zeros(1)}, eps=0.0),
            ValueError,
            r"^eps must be a finite number > 0",
        ),
        (
            lambda: Adam({"w": np.zeros(1)}, eps=-1.0),
            ValueError,
            r"^eps must be a finite number > 0",
        ),
        (lambda: Adam({"w": np.zeros(1)}, betas=0.9), TypeError, r"^betas must be a pair"),
        (
            lambda: Adam({"w": np.zeros(1)}, betas=(0.9, 1.0)),
            ValueError,
            r"^betas\[1\] must be in \[0, 1\)",
        ),
        (
            lambda: Adam({"w": np.zeros(1)}, betas=(1.0, 0.9)),
            ValueError,
            r"^betas\[0\] must be in \[0, 1\)",
        ),
        (
            lambda: Adam({"w": np.zeros(1)}, betas=(-0.1, 0.9)),
            ValueError,
            r"^betas\[0\] must be a finite",
        ),
        (
            lambda: make_optimizer("rmsprop", {"w": np.zeros(1)}, 0.1),
            ValueError,
            r"^unknown optimizer",
        ),
        (
            lambda: make_optimizer(SGD({"v": np.zeros(1)}, 0.1), {"w": np.zeros(1)}, 0.1),
            ValueError,
            r"^the optimizer instance is bound to different parameters",
        ),
    ],
)
def test_optimisers_name_the_bad_argument(call, error, message):
    """Bad optimiser arguments are refused with the argument's name."""
    with pytest.raises(error, match=message):
        call()


def test_adam_accepts_betas_of_zero_and_a_list():
    """betas = [0, 0] is plain sign-like RMS normalisation; a list works like a tuple."""
    p = {"w": np.array([1.0])}
    opt = Adam(p, lr=0.1, betas=[0.0, 0.0], eps=1e-12)
    opt.step({"w": np.array([3.0])})
    assert (opt.beta1, opt.beta2) == (0.0, 0.0) and p["w"][0] == pytest.approx(0.9)
    assert repr(opt) == "Adam(lr=0.1, beta1=0.0, beta2=0.0, eps=1e-12)"


def test_make_optimizer_returns_the_instance_it_is_given():
    """An optimiser bound to the same parameters passes through unchanged."""
    p = {"w": np.zeros(2)}
    opt = SGD(p, 0.3)
    assert make_optimizer(opt, p, 0.1) is opt and opt.lr == 0.3
    assert type(make_optimizer("adagrad", p, 0.2)) is Adagrad


def test_optimiser_state_errors_say_what_differs():
    """load_state_dict names the types, the missing buffer's keys and the shapes that differ."""
    adam = Adam({"w": np.zeros(3)})
    with pytest.raises(ValueError, match=r"^state is for 'SGD', this optimiser is Adam$"):
        adam.load_state_dict(SGD({"w": np.zeros(3)}, 0.1).state_dict())
    state = adam.state_dict()
    with pytest.raises(ValueError, match=r"^state buffer 'm' has keys \[\], expected \['w'\]"):
        adam.load_state_dict({**state, "buffers": {}})
    bad = {**state, "buffers": {"m": {"w": np.zeros(4)}, "v": {"w": np.zeros(3)}}}
    with pytest.raises(ValueError, match=r"^state m\['w'\] has shape \(4,\), expected \(3,\)"):
        adam.load_state_dict(bad)
    with pytest.raises(
        TypeError, match=r"^params\['w'\] must be a floating-point ndarray, got list"
    ):
        SGD({"w": [1.0]}, 0.1)
    with pytest.raises(TypeError, match=r"^momentum must be a number"):
        SGD({"w": np.zeros(1)}, 0.1, momentum="a")


def test_optimiser_state_error_lists_the_keys_it_got():
    """A buffer keyed by other names is reported with those names."""
    adam = Adam({"w": np.zeros(3)})
    state = adam.state_dict()
    wrong = {**state, "buffers": {"m": {"v": np.zeros(3)}, "v": {"w": np.zeros(3)}}}
    with pytest.raises(ValueError, match=r"^state buffer 'm' has keys \['v'\], expected \['w'\]"):
        adam.load_state_dict(wrong)
