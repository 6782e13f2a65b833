"""The gradient checker itself: it finds true gradients, restores inputs, and catches wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from vae_numpy.gradcheck import check_gradients, check_layer, numerical_gradient, relative_error
from vae_numpy.layers import Dense, Layer


def test_numerical_gradient_matches_known_derivative():
    """d/dx sum(sin x) = cos x, by central differences, to 1e-9."""
    x = np.linspace(-2, 2, 7)
    np.testing.assert_allclose(
        numerical_gradient(lambda v: np.sin(v).sum(), x), np.cos(x), atol=1e-9
    )


def test_numerical_gradient_restores_the_input_exactly():
    """The perturbed array is left bit-identical after the call."""
    x = np.random.default_rng(0).standard_normal((3, 4))
    before = x.copy()
    numerical_gradient(lambda v: (v**3).sum(), x)
    np.testing.assert_array_equal(x, before)


class _WrongDense(Dense):
    """A Dense layer whose weight gradient forgets a transpose-free factor of 2 in one entry."""

    def backward(self, grad_y):
        out = super().backward(grad_y)
        self.grads["W"][1, 0] *= 2
        return out


def test_checker_reports_a_planted_error_with_name_index_and_numbers():
    """A wrong gradient entry is caught and reported by parameter name and index."""
    rng = np.random.default_rng(0)
    layer = _WrongDense(3, 2, rng=rng, dtype=np.float64)
    report = check_layer(layer, rng.standard_normal((4, 3)), rng=rng)
    assert not report.ok(1e-6)
    assert report.worst.name == "W" and report.worst.index == (1, 0)
    assert report.worst.analytic == pytest.approx(2 * report.worst.numeric, rel=1e-6)
    with pytest.raises(AssertionError, match=r"W .*\(1, 0\)"):
        report.assert_ok()


class _SignFlipActivation(Layer):
    def forward(self, x):
        return x**2

    def backward(self, grad_y):
        return -grad_y  # wrong: should be 2 x grad_y


def test_checker_catches_wrong_input_gradient():
    """A wrong input gradient shows as the 'input' entry."""
    report = check_layer(_SignFlipActivation(), np.ones((2, 2)) * 0.7, rng=0)
    assert report.worst.name == "input" and report.max_error > 0.5


def test_relative_error_is_scale_free_and_zero_for_zero_gradients():
    """Relative error ignores a common scale and is 0 when both gradients vanish."""
    a = np.array([1.0, 2.0, 3.0])
    assert relative_error(a, a * (1 + 1e-9))[0] == pytest.approx(
        relative_error(1e6 * a, 1e6 * a * (1 + 1e-9))[0]
    )
    assert relative_error(np.zeros(3), np.zeros(3))[0] == 0.0


def test_check_gradients_rejects_mismatched_dicts():
    """Different keys or shapes between params and grads raise ValueError."""
    with pytest.raises(ValueError, match="keys"):
        check_gradients(lambda: 0.0, {"a": np.zeros(2)}, {"b": np.zeros(2)})
    with pytest.raises(ValueError, match="shape"):
        check_gradients(lambda: 0.0, {"a": np.zeros(2)}, {"a": np.zeros(3)})
    with pytest.raises(TypeError, match="floating"):
        numerical_gradient(lambda v: 0.0, np.zeros(3, dtype=int))


def test_fourth_order_stencil_is_more_accurate_than_second_order():
    """For exp at a large step, the O(h^4) stencil's error is far below the O(h^2) one's."""
    x = np.array([0.3, 1.0])
    err2 = np.abs(numerical_gradient(lambda v: np.exp(v).sum(), x, 1e-2) - np.exp(x)).max()
    err4 = np.abs(numerical_gradient(lambda v: np.exp(v).sum(), x, 1e-2, order=4) - np.exp(x)).max()
    assert err4 < 1e-3 * err2
