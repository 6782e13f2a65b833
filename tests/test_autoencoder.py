"""The plain autoencoder: gradients, loss, and that training lowers its reconstruction error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import seeds
from vae_numpy.autoencoder import Autoencoder
from vae_numpy.data import load_dataset
from vae_numpy.gradcheck import check_model


@settings(max_examples=25)
@given(seeds, st.sampled_from(["bce", "mse"]), st.sampled_from(["tanh", "softplus", "sigmoid"]))
def test_autoencoder_gradients_match_central_differences(seed, loss, activation):
    """Every parameter gradient of the reconstruction loss matches central differences."""
    rng = np.random.default_rng(seed)
    model = Autoencoder(5, (4,), 2, loss=loss, activation=activation, dtype=np.float64, rng=rng)
    check_model(model, rng.random((3, 5)), eps=1e-4, order=4).assert_ok(1e-6)


def test_autoencoder_loss_equals_independent_bce_and_squared_error():
    """loss is the mean over examples of the summed BCE (or squared error) of the reconstruction."""
    x = np.random.default_rng(0).random((5, 6))
    bce_model = Autoencoder(6, (4,), 2, loss="bce", dtype=np.float64, rng=0)
    p = bce_model.reconstruct(x)
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1).mean()
    assert bce_model.loss(x) == pytest.approx(bce, rel=1e-12)
    mse_model = Autoencoder(6, (4,), 2, loss="mse", dtype=np.float64, rng=0)
    assert mse_model.loss(x) == pytest.approx(((mse_model.reconstruct(x) - x) ** 2).sum(1).mean())


def test_autoencoder_training_lowers_reconstruction_error_on_digits():
    """30 epochs on digits take the held-out BCE from about 44 to below 30 nats per image."""
    x, _, _ = load_dataset("digits")
    x_test, _, _ = load_dataset("digits", "test")
    model = Autoencoder(64, (64,), 2, rng=0)
    before = -model.score(x_test)
    model.fit(x, epochs=30, batch_size=64, rng=0, progress=False)
    after = -model.score(x_test)
    assert before > 40 and after < 30, (before, after)
    assert model.encode(x_test).shape == (len(x_test), 2)


def test_autoencoder_save_load_round_trip(tmp_path):
    """A loaded autoencoder gives identical codes and reconstructions; a VAE file is refused."""
    from vae_numpy.vae import VAE

    x = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    model = Autoencoder(6, (5,), 2, loss="mse", rng=0)
    loaded = Autoencoder.load(model.save(tmp_path / "ae"))
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
    with pytest.raises(ValueError, match="expected 'VAE'"):
        VAE.load(tmp_path / "ae.npz")


def test_autoencoder_rejects_unknown_loss():
    """An unknown loss is named as the loss, with the valid ones listed."""
    with pytest.raises(ValueError, match="^unknown loss 'l1'; choose one of 'bce', 'mse'$"):
        Autoencoder(6, (5,), 2, loss="l1")


def test_autoencoder_refuses_noise_and_names_its_encoder_and_decoder_networks():
    """A deterministic model given eps raises TypeError; encoder/decoder are its named networks."""
    model = Autoencoder(6, (5,), 2, rng=0)
    x = np.random.default_rng(0).random((4, 6))
    message = "^the Autoencoder is deterministic and takes no eps; leave it out$"
    with pytest.raises(TypeError, match=message):
        model.loss(x, eps=np.zeros((4, 2)))
    assert model.encoder is model.networks["encoder"]
    assert model.decoder is model.networks["decoder"]
    assert list(model.parameters())[:2] == ["encoder.0.W", "encoder.0.b"]


# --- the constructor, the record and the loss terms against independent routes ---------


def _tiny_model(loss="bce", dtype=np.float64, seed=0):
    """A 5-4-2 tanh autoencoder."""
    return Autoencoder(5, (4,), 2, loss=loss, activation="tanh", dtype=dtype, rng=seed)


def _mlp_by_hand(model, name, x):
    """Dense, tanh, Dense of the network ``name``, written with the raw parameter arrays."""
    p = model.parameters()
    h = np.tanh(x @ p[f"{name}.0.W"] + p[f"{name}.0.b"])
    return h @ p[f"{name}.2.W"] + p[f"{name}.2.b"]


def _bce_by_hand(logits, x):
    """-[x ln p + (1 - x) ln(1 - p)] summed over features, with p = 1 / (1 + exp(-logits))."""
    p = 1 / (1 + np.exp(-logits))
    return -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)


def test_constructor_defaults_are_documented():
    """By default: a (400,) encoder, a 20-dimensional code, BCE, ReLU and float32."""
    config = Autoencoder(5).get_config()
    assert config == {
        "input_dim": 5,
        "hidden_dims": [400],
        "latent_dim": 20,
        "loss": "bce",
        "activation": "relu",
        "dtype": "float32",
    }


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_float32_model_stays_float32(loss):
    """A dtype=np.float32 model has float32 parameters, codes, records and gradients."""
    model = Autoencoder(5, (4,), 2, loss=loss, dtype=np.float32, rng=0)
    x = np.random.default_rng(0).random((3, 5))  # float64 input is cast to the model's dtype
    f32 = np.dtype(np.float32)
    assert {p.dtype for p in model.parameters().values()} == {f32}
    assert model.encode(x).dtype == model.code(x).dtype == model.reconstruct(x).dtype == f32
    f = model.forward(model.check_data(x), for_backward=True)
    assert f.x.dtype == f.z.dtype == f.out.dtype == f.reconstruction.dtype == f32
    _, grads = model.loss_and_gradients(x)
    assert {g.dtype for g in grads.values()} == {f32}


def test_seed_fixes_encoder_and_decoder():
    """Equal seeds give equal parameters in both networks; another seed gives other ones."""
    a, b, c = _tiny_model(seed=7), _tiny_model(seed=7), _tiny_model(seed=8)
    for name, p in a.parameters().items():
        np.testing.assert_array_equal(p, b.parameters()[name], err_msg=name)
        assert not np.array_equal(p, c.parameters()[name]), name


def test_bce_needs_inputs_in_unit_interval_and_mse_does_not():
    """A "bce" model refuses pixels in 0..255 (naming x); an "mse" model takes any real values."""
    x = np.random.default_rng(0).random((3, 5)) * 255
    with pytest.raises(ValueError, match=r"^x has values in .*in \[0, 1\] - divide by 255$"):
        _tiny_model("bce").loss(x)
    model = _tiny_model("mse")
    expected = ((_mlp_by_hand(model, "decoder", _mlp_by_hand(model, "encoder", x)) - x) ** 2).sum(1)
    assert model.loss(x) == pytest.approx(expected.mean(), rel=1e-12)


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_code_and_reconstruct_match_the_networks_by_hand(loss):
    """code(x) is the encoder's output; reconstruct is sigmoid(decoder) (bce) or decoder (mse)."""
    model = _tiny_model(loss)
    x = np.random.default_rng(1).random((3, 5))
    z = _mlp_by_hand(model, "encoder", x)
    np.testing.assert_allclose(model.code(x), z, rtol=1e-12)
    np.testing.assert_allclose(model.encode(x), z, rtol=1e-12)
    out = _mlp_by_hand(model, "decoder", z)
    expected = 1 / (1 + np.exp(-out)) if loss == "bce" else out
    np.testing.assert_allclose(model.reconstruct(x), expected, rtol=1e-12)


def test_forward_record_matches_the_networks_and_bce_by_hand():
    """x, z, logits and BCE per row by hand; the logits' gradient sigmoid - x only if for_backward."""
    model = _tiny_model("bce")
    x = np.random.default_rng(2).random((4, 5))
    z = _mlp_by_hand(model, "encoder", x)
    out = _mlp_by_hand(model, "decoder", z)
    plain, kept = model.forward((x,)), model.forward((x,), None, for_backward=True)
    for f in (plain, kept):
        assert f.x is x
        np.testing.assert_allclose(f.z, z, rtol=1e-12)
        np.testing.assert_allclose(f.out, out, rtol=1e-12)
        np.testing.assert_allclose(f.reconstruction, _bce_by_hand(out, x), rtol=1e-12)
    assert plain.reconstruction_grad is None
    np.testing.assert_allclose(kept.reconstruction_grad, 1 / (1 + np.exp(-out)) - x, atol=1e-15)


def test_mse_record_keeps_no_gradient():
    """An "mse" pass holds the squared error per row and no logits' gradient, even for backward."""
    model = _tiny_model("mse")
    x = np.random.default_rng(3).random((4, 5))
    f = model.forward((x,), None, for_backward=True)
    out = _mlp_by_hand(model, "decoder", _mlp_by_hand(model, "encoder", x))
    np.testing.assert_allclose(f.reconstruction, ((out - x) ** 2).sum(axis=1), rtol=1e-12)
    assert f.reconstruction_grad is None


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_loss_terms_are_the_reconstruction_error_under_both_names(loss):
    """Per-row terms and their means are {"loss", "reconstruction"}, both the error by hand."""
    model = _tiny_model(loss)
    x = np.random.default_rng(4).random((4, 5))
    out = _mlp_by_hand(model, "decoder", _mlp_by_hand(model, "encoder", x))
    rec = _bce_by_hand(out, x) if loss == "bce" else ((out - x) ** 2).sum(axis=1)
    terms = model.loss_terms_for_batch((x,))
    assert set(terms) == {"loss", "reconstruction"}
    for values in terms.values():
        np.testing.assert_allclose(values, rec, rtol=1e-12)
    parts = model.loss_parts(x)
    assert set(parts) == {"loss", "reconstruction"}
    assert parts["loss"] == parts["reconstruction"] == pytest.approx(rec.mean(), rel=1e-12)
    assert model.evaluate_terms(x) == pytest.approx(parts, rel=1e-12)


def test_backward_takes_the_logits_gradient_kept_by_the_forward_pass():
    """backward propagates the record's reconstruction_grad: doubling it doubles every gradient."""
    model = _tiny_model("bce")
    x = np.random.default_rng(5).random((4, 5))
    _, grads = model.loss_and_gradients(x)
    expected = {k: 2 * g for k, g in grads.items()}
    f = model.forward((x,), None, for_backward=True)
    f.reconstruction_grad = 2 * f.reconstruction_grad
    model.zero_grad()
    model.backward(f)
    for name, g in model.gradients().items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-12, err_msg=name)
