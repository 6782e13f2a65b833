"""The base class of every model: checks at the public boundary, the noise, the shared loss."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from vae_numpy.autoencoder import Autoencoder
from vae_numpy.base import (
    LOG_VAR_RANGE,
    BaseModel,
    encoder_output_grad,
    hidden_tuple,
    split_encoder_output,
)
from vae_numpy.cvae import ConditionalVAE
from vae_numpy.gmvae import GaussianMixtureVAE
from vae_numpy.ssvae import SemiSupervisedVAE
from vae_numpy.vae import VAE


def _rows(n: int, d: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d))


# --- hidden_tuple and the constructor's checks ----------------------------------------------


def test_hidden_dims_take_an_int_or_a_sequence_of_positive_ints():
    """An int (Python or numpy) is one hidden layer; sets, strings and bools are refused by name."""
    assert hidden_tuple(4) == (4,)
    assert hidden_tuple(np.int64(4)) == (4,)
    assert hidden_tuple([4, 3]) == (4, 3)
    assert VAE(5, 4, 2, rng=0).hidden_dims == (4,)
    for bad in ({4}, "44", True):
        message = (
            r"^hidden_dims must be a sequence of ints such as \(400,\), got "
            + re.escape(repr(bad))
            + "$"
        )
        with pytest.raises(TypeError, match=message):
            hidden_tuple(bad)
    with pytest.raises(ValueError, match=r"^hidden_dims\[1\] must be >= 1, got 0$"):
        Autoencoder(5, (4, 0), 2)
    with pytest.raises(TypeError, match=r"^hidden_dims\[0\] must be an integer, got 2.5"):
        hidden_tuple([2.5])


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_constructor_errors_name_the_parameter(cls):
    """input_dim, latent_dim and activation are named, exactly, in the constructor's errors."""
    with pytest.raises(ValueError, match="^input_dim must be >= 1, got 0$"):
        cls(0, (4,), 2)
    with pytest.raises(TypeError, match=r"^input_dim must be an integer, got 2.5 \(float\)$"):
        cls(2.5, (4,), 2)
    with pytest.raises(ValueError, match="^latent_dim must be >= 1, got 0$"):
        cls(5, (4,), 0)
    with pytest.raises(ValueError, match="^unknown activation 'swish'; choose one of 'relu'"):
        cls(5, (4,), 2, activation="swish")


def test_a_fresh_model_has_no_optimizer_history_or_metadata_and_starts_with_no_networks():
    """optimizer_ is None before fit; a bare BaseModel has an empty networks dict to fill."""
    model = VAE(5, (4,), 2, rng=0)
    assert model.optimizer_ is None
    assert model.history_ == {} and model.metadata == {}

    class OneNetwork(BaseModel):
        kind = "OneNetwork"

        def __init__(self) -> None:
            super().__init__(3, 2, activation="tanh", dtype=np.float64)
            self.networks["net"] = self.network([3, 2], np.random.default_rng(0))

    bare = BaseModel(3, 2, activation="relu", dtype=np.float64)
    assert bare.parameters() == {} and bare.gradients() == {} and bare.n_parameters == 0
    one = OneNetwork()
    assert list(one.parameters()) == ["net.0.W", "net.0.b"]
    assert one.n_parameters == 3 * 2 + 2


# --- the shared Gaussian encoder head -----------------------------------------------------


def test_encoder_head_passes_the_log_var_gradient_only_strictly_inside_the_clip():
    """d_log_var is zeroed at and beyond -20 and 20, kept strictly inside; d_mu passes whole."""
    assert LOG_VAR_RANGE == (-20.0, 20.0)
    raw = np.array([[-25.0, -20.0, -19.5, 0.0, 19.5, 20.0, 25.0]])
    d_mu = np.arange(1.0, 8.0)[None, :]
    d_log_var = np.full((1, 7), 3.0)
    grad = encoder_output_grad(d_mu, d_log_var, raw)
    np.testing.assert_array_equal(grad[:, :7], d_mu)
    np.testing.assert_array_equal(grad[:, 7:], [[0.0, 0.0, 3.0, 3.0, 3.0, 0.0, 0.0]])
    mu, log_var, raw_back = split_encoder_output(np.concatenate([d_mu, raw], axis=1), 7)
    np.testing.assert_array_equal(mu, d_mu)
    np.testing.assert_array_equal(log_var, [[-20.0, -20.0, -19.5, 0.0, 19.5, 20.0, 20.0]])
    np.testing.assert_array_equal(raw_back, raw)


# --- checks at the public boundary ----------------------------------------------------------


def test_messages_name_x_for_one_batch_and_X_for_a_data_set():
    """encode and loss_parts call the batch "x"; score and evaluate_terms call the data set "X"."""
    wrong = np.ones((2, 4))
    one_batch = "^x has 4 features but 5 are expected; did you load the right dataset\\?$"
    data_set = "^X has 4 features but 5 are expected; did you load the right dataset\\?$"
    vae = VAE(5, (4,), 2, rng=0)
    with pytest.raises(ValueError, match=one_batch):
        vae.encode(wrong)
    with pytest.raises(ValueError, match=data_set):
        vae.score(wrong)
    with pytest.raises(ValueError, match=data_set):
        vae.evaluate_terms(wrong)
    with pytest.raises(ValueError, match=one_batch):
        Autoencoder(5, (4,), 2, rng=0).loss_parts(wrong)
    with pytest.raises(ValueError, match=one_batch):
        ConditionalVAE(5, 2, (4,), 2, rng=0).loss_parts(wrong, [0, 1])
    with pytest.raises(ValueError, match=one_batch):
        SemiSupervisedVAE(5, 2, (4,), 2, rng=0).loss_parts(wrong)


def test_wrong_number_of_arrays_says_what_the_model_takes():
    """An unlabelled model given (X, y), or a labelled one given X alone, is told which it takes."""
    x = _rows(3)
    with pytest.raises(TypeError, match=r"^VAE takes X alone \(no labels\), got 2 array\(s\)$"):
        VAE(5, (4,), 2, rng=0).score(x, [0, 1, 0])
    cvae = ConditionalVAE(5, 2, (4,), 2, rng=0)
    labelled = r"^ConditionalVAE takes \(X, y\), the data and their labels, got {} array\(s\)$"
    with pytest.raises(TypeError, match=labelled.format(1)):
        cvae.score(x)
    with pytest.raises(TypeError, match=labelled.format(3)):
        cvae.loss_parts(x, [0, 1, 0], [0, 1, 0])


def test_checks_convert_to_the_model_dtype_and_hand_back_arrays_already_in_it():
    """x, z, eps and row weights come back in the model's dtype, without a copy when already in it."""
    model = ConditionalVAE(5, 2, (4,), 2, rng=0)  # float32
    x32, z32 = _rows(3).astype(np.float32), np.ones((3, 2), dtype=np.float32)
    eps32, w32 = np.zeros((3, 2), dtype=np.float32), np.full(3, 0.5, dtype=np.float32)
    assert model.check_x(x32) is x32
    assert model.check_data(x32, [0, 1, 0])[0] is x32
    assert model.check_z(z32) is z32
    assert model.noise(eps32, (3, 2), None) is eps32
    assert model.row_weights(w32, 3) is w32
    assert model.check_x(_rows(3)).dtype == np.float32
    assert model.check_z(np.ones((3, 2))).dtype == np.float32
    assert model.noise(np.zeros((3, 2)), (3, 2), None).dtype == np.float32
    assert model.noise(None, (3, 2), 0).dtype == np.float32


def test_row_weights_are_one_over_n_or_the_given_weights_in_the_model_dtype():
    """None gives 1/n per row (the mean); given weights are cast to the model's dtype."""
    model = ConditionalVAE(5, 2, (4,), 2, rng=0)  # float32
    mean = model.row_weights(None, 4)
    assert mean.dtype == np.float32
    np.testing.assert_array_equal(mean, np.float32(0.25))
    given = model.row_weights(np.array([0.1, 0.2, 0.7]), 3)
    assert given.dtype == np.float32
    np.testing.assert_array_equal(given, np.array([0.1, 0.2, 0.7], dtype=np.float32))
    assert ConditionalVAE(5, 2, (4,), 2, dtype=np.float64).row_weights(None, 3).dtype == np.float64


# --- the loss written once on forward / loss_terms / backward ------------------------------


@pytest.mark.parametrize(
    "cls", [VAE, Autoencoder, ConditionalVAE, SemiSupervisedVAE, GaussianMixtureVAE]
)
def test_every_forward_shares_the_keyword_arguments_of_the_base(cls):
    """forward takes keyword-only beta=None and for_backward=False in every model, as documented."""

    def keywords(fn):
        params = inspect.signature(fn).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}

    assert keywords(BaseModel.forward) == {"beta": None, "for_backward": False}
    assert keywords(cls.forward) == keywords(BaseModel.forward)


def test_loss_parts_of_a_float32_model_are_float64_means_of_the_loss_terms():
    """loss_parts averages each per-row term in float64, not in the float32 of the pass."""
    model = ConditionalVAE(5, 3, (4,), 2, beta=0.7, rng=0)  # float32
    x, y = _rows(9), np.arange(9) % 3
    eps = np.random.default_rng(1).standard_normal((9, 2))
    terms = model.loss_terms_for_batch(model.check_data(x, y), eps=eps)
    assert set(terms) == {"loss", "reconstruction", "kl"}
    assert all(v.dtype == np.float32 and v.shape == (9,) for v in terms.values())
    parts = model.loss_parts(x, y, eps=eps)
    assert set(parts) == set(terms)
    for name, values in terms.items():
        exact = sum(float(v) for v in values) / 9  # float64, row by row
        assert parts[name] == pytest.approx(exact, rel=1e-14, abs=0), name
    assert parts["loss"] == pytest.approx(parts["reconstruction"] + 0.7 * parts["kl"], rel=1e-6)


def test_only_the_training_step_asks_forward_for_the_backward_extras():
    """loss_and_gradients runs forward with for_backward=True; loss and loss_parts do not."""
    model = VAE(5, (4,), 2, rng=0)
    calls = []
    real_forward = model.forward

    def spy(batch, eps, **kwargs):
        calls.append(kwargs.get("for_backward", False))
        return real_forward(batch, eps, **kwargs)

    model.forward = spy
    x = _rows(3)
    model.loss_and_gradients(x, rng=0)
    assert calls == [True]
    calls.clear()
    model.loss(x, rng=0)
    model.loss_parts(x, rng=0)
    model.score(x)
    assert calls == [False, False, False]


def test_a_seed_draws_standard_normal_noise_of_shape_batch_by_latent():
    """loss and loss_parts with rng=s equal the loss with eps = default_rng(s) N(0, 1) draws."""
    model = ConditionalVAE(5, 2, (4,), 3, rng=0)  # float32
    x, y = _rows(4), [0, 1, 1, 0]
    eps = np.random.default_rng(7).standard_normal((4, 3), dtype=np.float32)
    assert model.loss(x, y, rng=7) == model.loss(x, y, eps=eps)
    assert model.loss_parts(x, y, rng=7) == model.loss_parts(x, y, eps=eps)
    assert model.loss(x, y, rng=7) != model.loss(x, y, rng=8)


def test_score_and_evaluate_terms_evaluate_in_batches_of_1024_by_default():
    """The data set is cut into batch_size rows (default 1024); score is minus the mean loss."""
    model = Autoencoder(5, (4,), 2, dtype=np.float64, rng=0)
    sizes = []
    real = model.loss_terms_for_batch

    def spy(batch, **kwargs):
        sizes.append(len(batch[0]))
        return real(batch, **kwargs)

    model.loss_terms_for_batch = spy
    x = _rows(1030)
    assert model.score(x) == pytest.approx(-model.loss(x), rel=1e-13)
    assert sizes == [1024, 6]
    sizes.clear()
    model.evaluate_terms(x)
    assert sizes == [1024, 6]
    sizes.clear()
    terms = model.evaluate_terms(x[:10], batch_size=4)
    assert sizes == [4, 4, 2]
    assert terms["loss"] == pytest.approx(model.loss(x[:10]), rel=1e-13)
