"""M2's figures: the confusion matrix, the accuracy recorded by fit, and the CLI's PNGs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from matplotlib.figure import Figure

from vae_numpy.checkpoints import load_checkpoint
from vae_numpy.cli import main
from vae_numpy.data import load_dataset
from vae_numpy.plots import (
    confusion_matrix,
    plot_accuracy,
    plot_confusion_matrix,
    plot_history,
)
from vae_numpy.ssvae import SemiSupervisedVAE
from vae_numpy.train import mean_loss_terms
from vae_numpy.vae import VAE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: A hand-made example: 10 rows of 3 classes, 6 predicted right.
Y_TRUE = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 1, 2, 0, 2, 2, 0])
#: Its confusion matrix, counted by hand: rows true classes, columns predictions.
COUNTS = np.array([[2, 1, 0], [1, 2, 1], [1, 0, 2]])  # not symmetric: rows and columns differ


def _cell_texts(ax):
    """The texts written in the cells of a confusion-matrix axes: {(row, column): text}."""
    return {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }


@pytest.fixture(scope="module")
def digits():
    """200 training rows with 2 labels per class (the rest -1), 60 labelled test rows."""
    x, y, _ = load_dataset("digits")
    x_test, y_test, _ = load_dataset("digits", "test")
    x, y = x[:200], y[:200]
    partial = np.full(len(y), -1)
    for c in range(10):
        partial[np.flatnonzero(y == c)[:2]] = c
    return x, partial, x_test[:60], y_test[:60]


# --- the confusion matrix --------------------------------------------------------------------


def test_confusion_matrix_counts_each_pair_of_true_and_predicted_class():
    """Entry [i, j] is the number of rows of class i predicted as j, by explicit summation."""
    counts = confusion_matrix(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(counts, COUNTS)
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    explicit = [
        [sum(1 for a, b in zip(t, p, strict=True) if a == i and b == j) for j in range(5)]
        for i in range(5)
    ]
    np.testing.assert_array_equal(confusion_matrix(t, p, n_classes=5), explicit)
    assert confusion_matrix(t, p).shape == (4, 4)  # C defaults to one more than the largest label


def test_confusion_figure_writes_the_counts_in_the_cells_and_the_accuracy_in_the_title():
    """The cells' texts are the counts, the image the row fractions, the title 6 of 10 right."""
    fig = plot_confusion_matrix(Y_TRUE, Y_PRED, title="M2")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    texts = _cell_texts(ax)
    assert texts == {(i, j): str(COUNTS[i, j]) for i in range(3) for j in range(3)}
    image = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(image, COUNTS / COUNTS.sum(axis=1, keepdims=True))
    assert ax.get_title() == "M2\naccuracy 60.0% (6 of 10)"
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert len(fig.axes) == 2  # the matrix and its colour bar


@pytest.mark.parametrize(
    ("normalize", "expected"),
    [
        (None, COUNTS),
        ("pred", COUNTS / COUNTS.sum(axis=0, keepdims=True)),
        ("all", COUNTS / 10),
    ],
)
def test_confusion_colours_follow_normalize_and_the_cells_keep_the_counts(normalize, expected):
    """normalize divides the colours by column totals, by n, or not at all; texts stay counts."""
    ax = plot_confusion_matrix(Y_TRUE, Y_PRED, normalize=normalize).axes[0]
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), expected)
    assert _cell_texts(ax)[(1, 2)] == "1"


def test_a_class_without_rows_gets_a_zero_row_not_nan():
    """With n_classes=4 and no row of class 3, its row is zeros (not 0/0) and still drawn."""
    fig = plot_confusion_matrix(Y_TRUE, Y_PRED, 4)
    image = np.asarray(fig.axes[0].images[0].get_array())
    assert image.shape == (4, 4) and np.all(np.isfinite(image))
    np.testing.assert_array_equal(image[3], 0.0)


def test_confusion_figure_draws_into_a_given_axes_and_saves_a_png(tmp_path):
    """ax= draws there and returns its figure; path= writes a PNG."""
    from vae_numpy.plots.figure import new_figure

    fig = new_figure(6, 3)
    left, right = fig.subplots(1, 2)
    out = plot_confusion_matrix(Y_TRUE, Y_PRED, ax=right, path=tmp_path / "c.png")
    assert out is fig and len(right.images) == 1 and not left.images
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize(
    ("y_true", "y_pred", "kwargs", "error", "match"),
    [
        (Y_TRUE, Y_PRED[:-1], {}, ValueError, "10 labels and y_pred 9"),
        (Y_TRUE.astype(float), Y_PRED, {}, TypeError, r"astype\(int\)"),
        (Y_TRUE, Y_PRED - 1, {}, ValueError, "negative label -1"),
        (Y_TRUE, Y_PRED, {"n_classes": 2}, ValueError, "label 2 is out of range for n_classes=2"),
        (Y_TRUE, Y_PRED, {"n_classes": 0}, ValueError, "n_classes must be >= 1"),
        (Y_TRUE.reshape(2, 5), Y_PRED, {}, ValueError, r"1-D array of labels, got shape \(2, 5\)"),
        ([], [], {}, ValueError, "non-empty"),
        (Y_TRUE, Y_PRED, {"normalize": "rows"}, ValueError, "unknown normalize 'rows'"),
        (Y_TRUE, Y_PRED, {"ax": "left"}, TypeError, "ax must be a matplotlib Axes"),
    ],
)
def test_bad_labels_are_refused_with_a_message_naming_them(y_true, y_pred, kwargs, error, match):
    """Mismatched lengths, float, negative, out-of-range or 2-D labels raise a clear error."""
    with pytest.raises(error, match=match):
        plot_confusion_matrix(y_true, y_pred, **kwargs)


# --- fit records the accuracy ------------------------------------------------------------------


def test_fit_records_the_validation_accuracy_of_predict_and_keeps_val_loss_on_ln_p_x(digits):
    """val_accuracy = mean(predict(x_val) == y_val); val_loss stays the bound with y summed out."""
    x, partial, x_val, y_val = digits
    model = SemiSupervisedVAE(64, 10, (16,), 2, rng=0)
    model.fit(
        x, partial, epochs=1, batch_size=50, rng=0, progress=False, threads=1,
        validation_data=x_val, validation_labels=y_val,
    )  # fmt: skip
    expected = float(np.mean(model.predict(x_val) == y_val))
    assert model.history_["val_accuracy"] == [expected]
    assert 0.0 < expected < 1.0  # neither all wrong nor all right: equality means something
    assert model.history_["val_loss"] == [pytest.approx(model.evaluate_terms(x_val)["loss"])]
    labelled = mean_loss_terms(model, model.check_data(x_val, y_val))["loss"]
    assert model.history_["val_loss"][0] != pytest.approx(labelled, rel=1e-3)  # not L(x, y)


def test_accuracy_is_recorded_on_resume_and_a_changed_setting_is_refused(digits, tmp_path):
    """One epoch, a checkpoint, a resumed second: val_accuracy as in one go; no labels: refused."""
    x, partial, x_val, y_val = digits
    options = dict(
        batch_size=50, rng=4, progress=False, threads=1,
        validation_data=x_val, validation_labels=y_val,
    )  # fmt: skip
    whole = SemiSupervisedVAE(64, 10, (8,), 2, rng=0).fit(x, partial, epochs=2, **options)
    path = tmp_path / "m2.npz"
    halves = SemiSupervisedVAE(64, 10, (8,), 2, rng=0)
    halves.fit(x, partial, epochs=1, checkpoint=path, **options)
    assert load_checkpoint(path)[1]["settings"]["val_accuracy"] is True
    halves.fit(x, partial, epochs=2, checkpoint=path, resume=True, **options)
    assert halves.history_["val_accuracy"] == whole.history_["val_accuracy"]
    assert len(halves.history_["val_accuracy"]) == 2
    del options["validation_labels"]
    with pytest.raises(ValueError, match="val_accuracy"):
        SemiSupervisedVAE(64, 10, (8,), 2, rng=0).fit(
            x, partial, epochs=3, checkpoint=path, resume=True, **options
        )


def test_a_vae_history_and_checkpoint_are_unchanged_and_labels_for_it_are_refused(tmp_path):
    """A model without predict records no accuracy, saves the old settings, refuses labels."""
    x, y, _ = load_dataset("digits")
    model = VAE(64, (8,), 2, rng=0)
    path = tmp_path / "vae.npz"
    model.fit(x[:100], epochs=1, rng=0, progress=False, validation_data=x[:20], checkpoint=path)
    assert "val_accuracy" not in model.history_
    assert set(load_checkpoint(path)[1]["settings"]) == {
        "batch_size", "lr", "optimizer", "kl_warmup_epochs", "binarize", "n_train",
    }  # fmt: skip
    with pytest.raises(TypeError, match="VAE has none: leave validation_labels out"):
        model.fit(
            x[:100], epochs=1, progress=False, validation_data=x[:20], validation_labels=y[:20]
        )


@pytest.mark.parametrize(
    ("validation", "labels", "match"),
    [
        (None, np.zeros(20, dtype=int), "give both"),
        ("x", np.zeros(19, dtype=int), r"20 integer classes >= 0.*shape \(19,\)"),
        ("x", np.zeros(20), "dtype float64"),
        ("x", np.full(20, -1), "integer classes >= 0"),
    ],
)
def test_bad_validation_labels_are_refused_before_training(digits, validation, labels, match):
    """validation_labels needs validation_data and one class index >= 0 per validation row."""
    x, partial, x_val, _ = digits
    model = SemiSupervisedVAE(64, 10, (8,), 2, rng=0)
    with pytest.raises(ValueError, match=match):
        model.fit(
            x, partial, epochs=1, progress=False, validation_labels=labels,
            validation_data=None if validation is None else x_val[:20],
        )  # fmt: skip


# --- the accuracy figure -------------------------------------------------------------------------


def test_accuracy_figure_draws_val_accuracy_per_epoch_on_a_fraction_axis():
    """plot_accuracy draws the column against the epochs, y from 0 to 1, last value in the title."""
    history = {"loss": [30.0, 25.0, 24.0], "val_loss": [31.0, 26.0, 25.0]}
    history["val_accuracy"] = [0.25, 0.5, 0.625]
    fig = plot_accuracy(history, title="M2")
    (ax,) = fig.axes
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(line.get_ydata(), [0.25, 0.5, 0.625])
    assert ax.get_ylim()[0] == 0.0 and ax.get_ylim()[1] >= 1.0
    assert ax.get_title() == "M2\nvalidation accuracy 62.5% after epoch 3"
    with pytest.raises(ValueError, match="validation_labels=y_val"):
        plot_accuracy({"loss": [1.0, 2.0]})


def test_history_plot_keeps_the_accuracy_off_its_nats_axes():
    """plot_history draws no line of val_accuracy: fractions never share an axis with nats."""
    history = {"loss": [30.0, 25.0], "val_loss": [31.0, 26.0], "val_accuracy": [0.25, 0.5]}
    fig = plot_history(history)
    for ax in fig.axes:
        for line in ax.get_lines():
            assert list(line.get_ydata()) != [0.25, 0.5]


# --- the command line ------------------------------------------------------------------------------


def test_cli_trains_m2_and_writes_its_accuracy_and_confusion_figures(tmp_path, capsys):
    """--model ssvae writes accuracy.png and confusion.png; history.json holds val_accuracy."""
    argv = ["train", "--epochs", "1", "--hidden", "16", "--out", str(tmp_path), "--no-progress"]
    assert main([*argv, "--model", "ssvae", "--labels", "50"]) == 0
    printed = capsys.readouterr().out
    for name in ("accuracy.png", "confusion.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE, name
        assert str(tmp_path / name) in printed
    history = json.loads((tmp_path / "history.json").read_text())
    accuracy = float(re.search(r"test accuracy of q\(y\|x\): (\d\.\d{4})", printed).group(1))
    assert history["val_accuracy"] == [pytest.approx(accuracy, abs=5e-5)]


def test_cli_draws_no_classifier_figures_for_a_model_that_cannot_predict(tmp_path):
    """A VAE run writes neither accuracy.png nor confusion.png (asked by capability)."""
    argv = ["train", "--epochs", "1", "--hidden", "16", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    assert (tmp_path / "loss.png").exists()
    assert not (tmp_path / "accuracy.png").exists() and not (tmp_path / "confusion.png").exists()
    assert "val_accuracy" not in json.loads((tmp_path / "history.json").read_text())
