"""The training loop: it learns, it is reproducible, it keeps float32, it resumes exactly."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from vae_numpy.checkpoints import TrainingInterrupted, load_checkpoint
from vae_numpy.data import load_dataset
from vae_numpy.optim import SGD
from vae_numpy.train import fit
from vae_numpy.vae import VAE


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").x, load_dataset("digits", "test").x


@pytest.mark.slow
def test_training_on_digits_reaches_the_reference_held_out_elbo(digits):
    """64-128-2, Adam 1e-3, batch 64, 100 epochs: held-out -ELBO falls from ~45 to below 25.5 nats.

    (PyTorch with the same setup reaches about 24.7 nats on the same 297 held-out images.)
    """
    x, x_test = digits
    model = VAE(64, (128,), 2, rng=0)
    before = -model.score(x_test)
    model.fit(x, epochs=100, batch_size=64, lr=1e-3, rng=0, progress=False, validation_data=x_test)
    after = -model.score(x_test)
    assert before > 40
    assert after < 25.5, after
    assert model.history_["val_loss"][-1] == pytest.approx(after, rel=1e-6)
    assert model.history_["loss"][-1] < model.history_["loss"][0] - 10


def test_history_records_every_epoch_and_part(digits):
    """history_ has one entry per epoch for loss, reconstruction, kl, val_*, beta, seconds, epoch."""
    x, x_test = digits
    model = VAE(64, (16,), 2, rng=0).fit(
        x[:200], epochs=3, batch_size=50, rng=0, progress=False, validation_data=x_test[:50]
    )
    h = model.history_
    for key in (
        "loss",
        "reconstruction",
        "kl",
        "val_loss",
        "val_reconstruction",
        "val_kl",
        "beta",
        "seconds",
        "epoch",
    ):
        assert len(h[key]) == 3, key
    np.testing.assert_allclose(
        np.array(h["reconstruction"]) + np.array(h["kl"]), h["loss"], rtol=1e-6
    )
    assert h["epoch"] == [1.0, 2.0, 3.0]


def test_kl_warmup_ramps_beta_from_zero(digits):
    """With kl_warmup_epochs=4 the KL weight grows over the first epochs and then stays at beta."""
    x, _ = digits
    model = VAE(64, (16,), 2, beta=2.0, rng=0).fit(
        x[:100], epochs=6, batch_size=50, rng=0, progress=False, kl_warmup_epochs=4
    )
    betas = model.history_["beta"]
    assert betas[0] < betas[1] < betas[2] < betas[3] <= 2.0 and betas[4] == betas[5] == 2.0


def test_same_seed_gives_identical_parameters_and_history(digits):
    """Two runs with the same seeds are bit-identical; a different seed differs."""
    x, _ = digits

    def run(seed):
        return VAE(64, (16,), 2, rng=0).fit(
            x[:300], epochs=2, batch_size=32, rng=seed, progress=False
        )

    a, b, c = run(1), run(1), run(2)
    for k in a.parameters():
        np.testing.assert_array_equal(a.parameters()[k], b.parameters()[k])
    assert a.history_["loss"] == b.history_["loss"]
    assert not np.array_equal(a.parameters()["encoder.0.W"], c.parameters()["encoder.0.W"])


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad"])
def test_float32_training_keeps_every_array_float32(digits, optimizer):
    """After training steps every parameter, gradient and optimiser buffer is still float32."""
    x, _ = digits
    model = VAE(64, (16,), 2, likelihood="gaussian", rng=0)
    model.fit(x[:64], epochs=1, batch_size=32, rng=0, progress=False, optimizer=optimizer, lr=1e-3)
    assert all(p.dtype == np.float32 for p in model.parameters().values())
    assert all(g.dtype == np.float32 for g in model.gradients().values())
    assert all(a.dtype == np.float32 for d in model.optimizer_.state.values() for a in d.values())
    assert np.float32 == model.reconstruct(x[:2]).dtype == model.sample(2, rng=0).dtype


def test_optimizer_instance_is_used_as_given(digits):
    """An optimiser bound to model.parameters() is used instead of building one by name."""
    x, _ = digits
    model = VAE(64, (16,), 2, rng=0)
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.fit(x[:64], epochs=1, batch_size=32, rng=0, progress=False, optimizer=opt)
    assert model.optimizer_ is opt and opt.t == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resume_gives_bit_identical_result(tmp_path, digits, dtype):
    """4 epochs straight equal 2 epochs, a checkpoint, and a resumed run to 4 (params and history)."""
    x, x_test = digits
    kw = {
        "batch_size": 64,
        "progress": False,
        "validation_data": x_test[:40],
        "kl_warmup_epochs": 1.5,
    }
    straight = VAE(64, (16,), 2, dtype=dtype, rng=0).fit(x[:256], epochs=4, rng=5, **kw)
    ckpt = tmp_path / "run.npz"
    VAE(64, (16,), 2, dtype=dtype, rng=0).fit(x[:256], epochs=2, rng=5, checkpoint=ckpt, **kw)
    assert load_checkpoint(ckpt)[1]["epoch"] == 2
    resumed = VAE(64, (16,), 2, dtype=dtype, rng=123).fit(
        x[:256], epochs=4, rng=None, checkpoint=ckpt, resume=True, **kw
    )
    for k in straight.parameters():
        np.testing.assert_array_equal(resumed.parameters()[k], straight.parameters()[k])
    drop = {"seconds", "threads"}  # the machine's, not the run's
    assert {k: v for k, v in resumed.history_.items() if k not in drop} == {
        k: v for k, v in straight.history_.items() if k not in drop
    }


def test_resume_refuses_a_checkpoint_of_another_setup(tmp_path, digits):
    """Resuming with a different batch size or model raises ValueError naming the mismatch."""
    x, _ = digits
    ckpt = tmp_path / "run.npz"
    VAE(64, (16,), 2, rng=0).fit(
        x[:64], epochs=1, batch_size=32, rng=0, progress=False, checkpoint=ckpt
    )
    with pytest.raises(ValueError, match="batch_size"):
        VAE(64, (16,), 2, rng=0).fit(
            x[:64], epochs=2, batch_size=16, progress=False, checkpoint=ckpt, resume=True
        )
    with pytest.raises(ValueError, match="checkpoint is for"):
        VAE(64, (8,), 2, rng=0).fit(
            x[:64], epochs=2, batch_size=32, progress=False, checkpoint=ckpt, resume=True
        )
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        VAE(64, (16,), 2).fit(
            x[:64], epochs=2, progress=False, checkpoint=tmp_path / "none.npz", resume=True
        )


def test_divergence_stops_with_epoch_and_batch_and_restores_last_good_state(digits):
    """lr=1e4 makes the loss non-finite: FloatingPointError names epoch/batch; params are finite."""
    x, _ = digits
    model = VAE(64, (16,), 2, likelihood="gaussian", rng=0)
    with pytest.raises(FloatingPointError, match=r"epoch \d+, batch \d+.*smaller learning rate"):
        model.fit(x, epochs=50, batch_size=32, lr=1e4, optimizer="sgd", rng=0, progress=False)
    assert all(np.isfinite(p).all() for p in model.parameters().values())
    assert np.isfinite(model.loss(x[:10], rng=0))


def test_ctrl_c_stops_cleanly_after_the_current_step(tmp_path, digits, monkeypatch):
    """SIGINT during fit finishes the running step, keeps the epoch checkpoint and raises."""
    x, _ = digits
    model = VAE(64, (16,), 2, rng=0)
    ckpt = tmp_path / "run.npz"
    calls = {"n": 0}
    original = model.loss_and_gradients_for_batch

    def step_then_interrupt(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # in the middle of the 2nd epoch (4 steps per epoch)
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "loss_and_gradients_for_batch", step_then_interrupt)
    with pytest.raises(TrainingInterrupted, match="epoch 2, batch 3"):
        model.fit(x[:256], epochs=5, batch_size=64, rng=0, progress=False, checkpoint=ckpt)
    assert load_checkpoint(ckpt)[1]["epoch"] == 1
    assert model.optimizer_.t == 7  # the interrupted step was completed, not torn
    assert all(np.isfinite(p).all() for p in model.parameters().values())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_fit_rejects_bad_arguments(digits):
    """Non-positive epochs or batch sizes, unknown optimisers and resume without a path fail clearly."""
    x, _ = digits
    model = VAE(64, (8,), 2, rng=0)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, x, epochs=0)
    with pytest.raises(TypeError, match="batch_size"):
        fit(model, x, epochs=1, batch_size=2.5)
    with pytest.raises(ValueError, match="'adam', 'sgd', 'adagrad'"):
        fit(model, x, epochs=1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="checkpoint"):
        fit(model, x, epochs=1, resume=True)
    with pytest.raises(ValueError, match="64"):
        fit(model, x[:, :10], epochs=1)


def test_warmup_beta_ramps_linearly_and_leaves_models_without_kl_alone():
    """beta * min(1, step / warmup_steps); no warm-up gives beta; None stays None."""
    from vae_numpy.train import warmup_beta

    assert [warmup_beta(2.0, s, 4) for s in (0, 1, 2, 4, 9)] == [0.0, 0.5, 1.0, 2.0, 2.0]
    assert warmup_beta(2.0, 0, 0) == 2.0
    assert warmup_beta(None, 3, 4) is None


class _LabelledMean:
    """A minimal protocol model trained on (x, y): one parameter per class, squared error."""

    kind = "LabelledMean"
    input_dim = 2
    dtype = np.dtype(np.float64)
    beta = None

    def __init__(self):
        self.history_, self.optimizer_ = {}, None
        self.theta = np.zeros((3, 2))
        self.grad = np.zeros((3, 2))
        self.betas_seen = []

    def parameters(self):
        return {"theta": self.theta}

    def gradients(self):
        return {"theta": self.grad}

    def zero_grad(self):
        self.grad[...] = 0

    def check_data(self, *arrays, name="X"):
        x, y = arrays
        return np.asarray(x, np.float64), np.asarray(y)

    def loss_terms_for_batch(self, batch, *, rng=None):
        x, y = batch
        err = np.sum((self.theta[y] - x) ** 2, axis=1)
        return {"loss": err, "reconstruction": err}

    def loss_and_gradients_for_batch(self, batch, *, rng=None, beta=None):
        x, y = batch
        self.betas_seen.append(beta)
        np.add.at(self.grad, y, 2 * (self.theta[y] - x) / len(x))
        loss = float(np.mean(np.sum((self.theta[y] - x) ** 2, axis=1)))
        return loss, {"reconstruction": loss}

    def get_config(self):
        return {}


def test_fit_trains_any_protocol_model_on_labelled_data():
    """fit(model, X, y) drives a model that takes (x, y) batches: it learns each class mean."""
    gen = np.random.default_rng(0)
    y = gen.integers(0, 3, 300)
    centres = np.array([[1.0, 2.0], [-1.0, 0.5], [3.0, -2.0]])
    x = centres[y] + 0.01 * gen.standard_normal((300, 2))
    model = _LabelledMean()
    fit(
        model,
        x,
        y,
        epochs=30,
        batch_size=32,
        lr=0.1,
        optimizer="sgd",
        rng=0,
        progress=False,
        validation_data=(x[:50], y[:50]),
    )
    np.testing.assert_allclose(model.theta, centres, atol=0.01)
    assert set(model.history_) == {
        "loss",
        "reconstruction",
        "val_loss",
        "val_reconstruction",
        "seconds",
        "epoch",
        "threads",
    }
    assert set(model.betas_seen) == {None}  # no KL term: no beta column, no warm-up


def test_train_epoch_is_one_pass_of_sgd_over_shuffled_minibatches():
    """train_epoch equals the loop written out by hand: same shuffle, same steps, same means."""
    from vae_numpy.optim import SGD as Sgd
    from vae_numpy.train import train_epoch

    gen = np.random.default_rng(1)
    y = gen.integers(0, 3, 20)
    x = gen.standard_normal((20, 2))
    a, b = _LabelledMean(), _LabelledMean()
    row = train_epoch(
        a, Sgd(a.parameters(), 0.2), (x, y), batch_size=6, rng=np.random.default_rng(5)
    )
    order = np.random.default_rng(5).permutation(20)
    total = 0.0
    for lo in range(0, 20, 6):
        rows = order[lo : lo + 6]
        b.zero_grad()
        loss, _ = b.loss_and_gradients_for_batch((x[rows], y[rows]))
        b.theta -= 0.2 * b.grad
        total += loss * len(rows)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-15)
    assert row["loss"] == pytest.approx(total / 20, rel=1e-14)


class _FirstRowsTwice:
    """A sampler that takes the first ``batch_size`` rows, twice an epoch, in order."""

    def __init__(self):
        self.calls = []

    def batches(self, data, batch_size, rng):
        self.calls.append(batch_size)
        for _ in range(2):
            yield tuple(a[:batch_size] for a in data)

    def steps_per_epoch(self, data, batch_size):
        return 2


def test_fit_takes_its_minibatches_from_the_sampler_it_is_given():
    """With a sampler, every step trains on its batches; the history averages the rows it saw."""
    from vae_numpy.samplers import BatchSampler

    x = np.array([[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]])
    y = np.zeros(3, dtype=int)
    sampler = _FirstRowsTwice()
    assert isinstance(sampler, BatchSampler)
    model = _LabelledMean()
    fit(model, x, y, epochs=3, batch_size=2, lr=0.25, optimizer="sgd", rng=0, progress=False,
        sampler=sampler)  # fmt: skip
    assert sampler.calls == [2, 2, 2] and model.optimizer_.t == 6
    # only rows 0 and 1 were seen: theta[0] moves toward their mean (2, 2), never toward 100
    np.testing.assert_allclose(model.theta[0], [2.0, 2.0], atol=0.1)
    assert model.history_["loss"][-1] < 2.1  # mean over the 2 x 2 rows seen, not over 3 rows


def test_fit_refuses_a_sampler_without_the_protocols_methods(digits):
    """sampler= must have batches() and steps_per_epoch(): TypeError naming BatchSampler."""
    model = VAE(64, (8,), 2, rng=0)
    with pytest.raises(TypeError, match="BatchSampler"):
        fit(model, digits[0][:10], epochs=1, sampler=[1, 2, 3])
