"""The vae-numpy command: it trains and writes every file, samples, evaluates, checks the KL."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from vae_numpy.cli import main
from vae_numpy.vae import VAE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--epochs", "3", "--hidden", "32", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_train_writes_model_history_and_all_figures(trained_run, capsys):
    """train writes model.npz, history.json and the loss/reconstruction/sample/latent/manifold PNGs."""
    for name in (
        "loss.png",
        "reconstructions.png",
        "samples.png",
        "latent.png",
        "manifold.png",
        "kl_per_dim.png",
    ):
        assert (trained_run / name).read_bytes()[:8] == PNG_SIGNATURE, name
    history = json.loads((trained_run / "history.json").read_text())
    assert len(history["loss"]) == 3
    model = VAE.load(trained_run / "model.npz")
    assert model.latent_dim == 2 and model.metadata["image_shape"] == [8, 8]
    assert not (trained_run / "checkpoint.npz").exists()


def test_train_prints_final_train_and_test_elbo(tmp_path, capsys):
    """The summary states the final train and test -ELBO in nats per example."""
    main(["train", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert re.search(r"final train -ELBO: \d+\.\d\d nats per example", out)
    assert re.search(r"final test  -ELBO: \d+\.\d\d nats per example", out)


def test_train_autoencoder(tmp_path):
    """--model ae trains the plain autoencoder and writes its figures (no samples, no manifold)."""
    assert (
        main(["train", "--model", "ae", "--epochs", "1", "--out", str(tmp_path), "--no-progress"])
        == 0
    )
    assert (tmp_path / "latent.png").exists() and not (tmp_path / "samples.png").exists()


def test_sample_and_evaluate_use_a_trained_model(trained_run, tmp_path, capsys):
    """sample writes a PNG grid; evaluate prints the ELBO and its two parts."""
    out = tmp_path / "s.png"
    assert (
        main(["sample", "--model", str(trained_run / "model.npz"), "-n", "16", "--out", str(out)])
        == 0
    )
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert main(["evaluate", "--model", str(trained_run / "model.npz")]) == 0
    text = capsys.readouterr().out
    elbo = float(re.search(r"ELBO\s+(-?\d+\.\d+)", text).group(1))
    rec = float(re.search(r"reconstruction\s+(\d+\.\d+)", text).group(1))
    kl = float(re.search(r"KL\s+(\d+\.\d+)", text).group(1))
    assert elbo == pytest.approx(-(rec + kl), abs=2e-3)


def test_evaluate_with_iwae_prints_bounds_in_order(trained_run, capsys):
    """evaluate --iwae-k prints IWAE <= exact ln p(x) (2-D latent) and a one-sample ELBO near it."""
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(trained_run / "model.npz"),
                "--iwae-k",
                "200",
                "--max-examples",
                "40",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    elbo = float(re.search(r"ELBO\s+(-?\d+\.\d+)", text).group(1))
    iwae = float(re.search(r"IWAE \(k=200\)\s+(-?\d+\.\d+)", text).group(1))
    exact = float(re.search(r"exact ln p\(x\)\s+(-?\d+\.\d+)", text).group(1))
    assert "(40 examples)" in text
    assert iwae < exact + 0.05  # a lower bound, up to Monte Carlo noise
    assert elbo < exact + 0.5  # one-sample ELBO: a noisy lower bound


def test_verify_kl_prints_agreeing_columns(capsys):
    """verify-kl shows closed form and quadrature agreeing to 1e-6 and Monte Carlo within its band."""
    assert main(["verify-kl"]) == 0
    text = capsys.readouterr().out
    rows = re.findall(r"\|\s+(\d+\.\d+)\s+(\d+\.\d+)\s+\S+\s+\|\s+(-?\d+\.\d+) ± (\d+\.\d+)", text)
    assert len(rows) >= 6
    for closed, quad, mc, band in rows:
        assert abs(float(closed) - float(quad)) < 1e-6
        assert abs(float(closed) - float(mc)) <= 2 * float(band) + 1e-5  # ± shows 2 standard errors


def test_bad_arguments_give_one_line_errors_not_tracebacks(tmp_path):
    """Unknown datasets, missing files and non-positive numbers are reported in one line."""

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "vae_numpy.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    for args in (
        ["train", "--epochs", "0"],
        ["train", "--dataset", "cifar"],
        ["sample", "--model", str(tmp_path / "none.npz")],
    ):
        proc = run(*args)
        assert proc.returncode == 2, args
        assert "Traceback" not in proc.stderr
        assert "error" in proc.stderr.splitlines()[-1]
    proc = run("sample", "--model", str(tmp_path / "none.npz"))
    assert "no model file" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_every_command_has_help():
    """--help works for the program and every sub-command."""
    for args in ([], ["train"], ["sample"], ["evaluate"], ["verify-kl"]):
        proc = subprocess.run(
            [sys.executable, "-m", "vae_numpy.cli", *args, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0 and "usage: vae-numpy" in proc.stdout


def test_models_trained_by_the_cli_match_the_python_api(tmp_path):
    """The CLI's model equals VAE(...).fit(...) with the same settings and seed."""
    from vae_numpy.data import load_dataset

    main(
        [
            "train",
            "--epochs",
            "2",
            "--hidden",
            "16",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--seed",
            "3",
        ]
    )
    x_train, _, _ = load_dataset("digits")
    x_test, _, _ = load_dataset("digits", "test")
    api = VAE(64, (16,), 2, rng=3).fit(
        x_train, epochs=2, batch_size=64, rng=3, progress=False, validation_data=x_test
    )
    cli = VAE.load(tmp_path / "model.npz")
    for k, p in api.parameters().items():
        np.testing.assert_array_equal(cli.parameters()[k], p)


def test_ctrl_c_during_train_keeps_checkpoint_and_prints_resume_command(tmp_path):
    """SIGINT stops `vae-numpy train` cleanly (exit 130), keeps the checkpoint, and --resume finishes."""
    import signal
    import time

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "vae_numpy.cli",
        "train",
        "--epochs",
        "400",
        "--hidden",
        "16",
        "--out",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert (
        f"resume with: vae-numpy train --epochs 400 --hidden 16 --out {out} --no-progress --resume"
        in err
    )
    from vae_numpy.train import load_checkpoint

    epoch = load_checkpoint(out / "checkpoint.npz")[1]["epoch"]
    assert 1 <= epoch < 400
    shorter = [*cmd[:4], "--epochs", str(epoch + 1), *cmd[6:], "--resume"]  # finish 1 epoch later
    resumed = subprocess.run(shorter, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert len(VAE.load(out / "model.npz").history_["loss"]) == epoch + 1
