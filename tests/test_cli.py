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
    for args in ([], ["train"], ["sample"], ["evaluate"], ["verify-kl"], ["notebooks"]):
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
    """SIGINT stops `train` (exit 130), keeps the checkpoint and a loadable model; --resume finishes."""
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
    from vae_numpy.checkpoints import load_checkpoint

    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    epoch = meta["epoch"]
    assert 1 <= epoch < 400
    # the run folder holds a model of the last completed epoch, which VAE.load and sample accept
    assert (
        f"saved the model of epoch {epoch}, the last one completed, to {out / 'model.npz'}" in err
    )
    stopped = VAE.load(out / "model.npz")
    for name, param in stopped.parameters().items():
        np.testing.assert_array_equal(param, arrays[f"param/{name}"])
    assert len(stopped.history_["loss"]) == epoch
    png = tmp_path / "from_stopped.png"
    assert main(["sample", "--model", str(out / "model.npz"), "-n", "4", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    shorter = [*cmd[:4], "--epochs", str(epoch + 1), *cmd[6:], "--resume"]  # finish 1 epoch later
    resumed = subprocess.run(shorter, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert len(VAE.load(out / "model.npz").history_["loss"]) == epoch + 1


# --- help texts ----------------------------------------------------------------------------


def _subparsers(parser):
    """(name, parser) of every sub-command, nested ones included."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from _subparsers(sub)


def test_every_option_of_every_command_has_a_help_text():
    """No option is left without help, and defaults print as words, not Python objects."""
    import argparse

    from vae_numpy.cli import build_parser

    missing = [
        (name, action.option_strings or action.dest)
        for name, sub in _subparsers(build_parser())
        for action in sub._actions
        if not action.help
        and action.dest != "help"
        and not isinstance(action, argparse._SubParsersAction)  # the command itself
    ]
    assert missing == []
    proc = subprocess.run(
        [sys.executable, "-m", "vae_numpy.cli", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = " ".join(proc.stdout.split())
    assert "{'" not in text and "Adam learning rate" not in text
    assert "learning rate of the optimizer chosen with --optimizer" in text
    assert "digits 100, mnist 10, fashion-mnist 10, frey-faces 200" in text


# --- messages a user can act on ------------------------------------------------------------


def test_files_that_are_not_models_are_named_for_what_they_look_like(tmp_path, capsys):
    """A PNG, a text file or a foreign .npz given as --model: "is not a vae_numpy model file"."""
    (tmp_path / "picture.png").write_bytes(PNG_SIGNATURE + bytes(100))
    (tmp_path / "notes.txt").write_text("hello\n")
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    for name, looks_like in (
        ("picture.png", "a PNG image"),
        ("notes.txt", "a text file starting with 'hello'"),
        (
            "foreign.npz",
            "a NumPy .npz archive of 1 array(s) ('weights') without a vae_numpy header",
        ),
    ):
        for command in ("sample", "evaluate"):
            assert main([command, "--model", str(tmp_path / name)]) == 2
            message = capsys.readouterr().err.strip()
            assert len(message.splitlines()) == 1 and "Traceback" not in message
            assert (
                f"{tmp_path / name} is not a vae_numpy model file: it looks like {looks_like}"
                in message
            )
            assert "pickle" not in message


def test_missing_data_dir_is_reported_as_not_existing_and_not_created(tmp_path, capsys):
    """--data-dir that does not exist: the error names it, says so, and creates nothing."""
    missing = tmp_path / "no" / "such"
    assert (
        main(
            [
                "train",
                "--dataset",
                "mnist",
                "--data-dir",
                str(missing),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"--data-dir {missing} does not exist" in err
    assert "data_dir=" not in err and "download=True" not in err
    assert list(tmp_path.iterdir()) == []


def test_data_not_found_names_the_flag_and_the_folder_and_leaves_no_folder(
    tmp_path, monkeypatch, capsys
):
    """No files and no mirror: the error names --data-dir and the folder looked in; nothing is left."""
    import socket

    from vae_numpy import data

    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    monkeypatch.setitem(data.MIRRORS, "mnist", [dead])
    cache = tmp_path / "cache"
    monkeypatch.setenv("VAE_NUMPY_DATA", str(cache))
    assert main(["train", "--dataset", "mnist", "--no-progress", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"is not in {cache / 'mnist'} (that folder does not exist)" in err
    assert "could not be downloaded" in err and "pass --data-dir DIR" in err
    assert "data_dir=" not in err and "download=True" not in err
    assert list(tmp_path.iterdir()) == []  # no empty cache folder left behind

    (tmp_path / "mine" / "mnist").mkdir(parents=True)  # a folder that exists but lacks files
    args = [
        "evaluate",
        "--model",
        "m.npz",
        "--dataset",
        "mnist",
        "--data-dir",
        str(tmp_path / "mine"),
    ]
    VAE(784, (4,), 2, rng=0).save(tmp_path / "m.npz")
    args[2] = str(tmp_path / "m.npz")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"is not in {tmp_path / 'mine' / 'mnist'} and could not be downloaded" in err
    assert f"--data-dir DIR (instead of {tmp_path / 'mine'})" in err
    assert sorted(p.name for p in (tmp_path / "mine" / "mnist").iterdir()) == []


def test_ctrl_c_in_the_first_epoch_says_nothing_was_saved_and_how_to_start_again(tmp_path):
    """SIGINT before any epoch ended: exit 130, "nothing was saved", the same command to rerun."""
    import signal

    out = tmp_path / "run"
    args = ["train", "--epochs", "5", "--hidden", "1024", "1024", "--batch-size", "1"]
    args += ["--out", str(out), "--no-progress"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vae_numpy.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().startswith("training VAE")  # printed just before fit starts
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" not in err
    assert "stopped before the first epoch ended: nothing was saved." in err
    assert f"start again with: vae-numpy {' '.join(args)}" in err
    assert not (out / "checkpoint.npz").exists() and not (out / "model.npz").exists()


def test_a_loss_that_ends_far_above_its_start_warns_about_the_learning_rate(tmp_path, capsys):
    """Adam with --lr 1e4 finishes, but the run warns that it diverged and names --lr."""
    args = ["train", "--optimizer", "adam", "--lr", "1e4", "--epochs", "2", "--hidden", "16"]
    assert main([*args, "--out", str(tmp_path), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "training diverged" in err and "--lr 10000 is probably too large for adam" in err
    assert "try --lr 1000 or smaller" in err


def test_a_normal_run_does_not_warn(tmp_path, capsys):
    """The default settings train without a divergence warning."""
    assert (
        main(["train", "--epochs", "2", "--hidden", "16", "--out", str(tmp_path), "--no-progress"])
        == 0
    )
    assert "warning" not in capsys.readouterr().err


def test_a_non_finite_loss_is_a_one_line_error_naming_the_flag(tmp_path, capsys):
    """SGD with --lr 1e4 overflows: exit 2 with the --lr to try, not a traceback."""
    args = ["train", "--optimizer", "sgd", "--lr", "1e4", "--epochs", "2", "--hidden", "16"]
    assert main([*args, "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "On the command line: --lr 1000" in err


# --- notebooks -----------------------------------------------------------------------------


def test_notebooks_copies_lecture_notebooks_and_student_copies_and_refuses_to_overwrite(
    tmp_path, capsys
):
    """`notebooks DIR` writes the five lectures and the student copies; a second run needs --force."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "notebooks"
    assert main(["notebooks", str(tmp_path / "course")]) == 0
    out = capsys.readouterr().out
    lectures = sorted(p.name for p in root.glob("*.ipynb"))
    students = sorted(p.name for p in (root / "assignments" / "release").glob("*.ipynb"))
    assert sorted(p.name for p in (tmp_path / "course").glob("*.ipynb")) == lectures
    assert sorted(p.name for p in (tmp_path / "course" / "assignments").glob("*.ipynb")) == students
    assert not any("source" in p.parts for p in (tmp_path / "course").rglob("*"))  # no solutions
    for name in students:
        copied = tmp_path / "course" / "assignments" / name
        assert copied.read_bytes() == (root / "assignments" / "release" / name).read_bytes()
        assert f"wrote {copied}" in out
    assert f"open them with: jupyter lab {tmp_path / 'course'}" in out

    (tmp_path / "course" / lectures[0]).write_text("my notes")
    assert main(["notebooks", str(tmp_path / "course")]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "course" / lectures[0]).read_text() == "my notes"  # nothing overwritten
    assert main(["notebooks", str(tmp_path / "course"), "--force"]) == 0
    assert (tmp_path / "course" / lectures[0]).read_bytes() == (root / lectures[0]).read_bytes()


def test_notebooks_refuses_solutions_and_says_where_instructors_find_them(tmp_path, capsys):
    """--solutions writes nothing and exits 2: the sources are not shipped; the message says
    they are in the repository and the sdist, in notebooks/assignments/source."""
    from vae_numpy.resources import assignments_dir

    assert main(["notebooks", str(tmp_path / "course"), "--solutions"]) == 2
    err = capsys.readouterr().err
    assert "not shipped" in err and "notebooks/assignments/source" in err and "sdist" in err
    assert not (tmp_path / "course").exists()
    with pytest.raises(ValueError, match="not shipped"):
        assignments_dir("source")
    with pytest.raises(SystemExit):
        main(["notebooks", "--help"])
    assert "--solutions" not in capsys.readouterr().out  # not offered, only explained


# --- assignments: what grading prints and writes (no kernel) ---------------------------------

ESCAPES = "\x1b[2K\x1b[1G\x1b]0;owned\x07\r\x9b31m\x00\u202e"


def _hostile_report():
    from vae_numpy.assignments import GradedTest, GradeReport

    test = GradedTest("test_one", 0, 2, False, False, f"=HYPERLINK(x){ESCAPES}boom", 0.1)
    return GradeReport(
        assignment="04_adam",
        submission=f"alice/04_adam{ESCAPES}.ipynb",
        tests=[test],
        problems=[f"+cmd|' /C calc'!A0{ESCAPES}"],
        flags=[f"@SUM(1){ESCAPES}"],
        seed=7,
        isolation="bubblewrap",
    )


def test_reports_csv_and_feedback_hold_no_escape_or_control_characters(tmp_path):
    """Text, JSON, CSV and feedback of a report whose messages, problems, flags and file name
    carry terminal escapes and control characters hold none of them (newlines and tabs stay)."""
    import json
    from pathlib import Path

    from vae_numpy.assignments.report import clean_text, csv_bytes, write_feedback

    assert clean_text("a\x1b[31mb\x1b[0m\tc\nd\r\x1b]2;t\x1b\\e\x7f\x85") == "ab\tc\nd\ne"
    report = _hostile_report()
    root = tmp_path / "class"
    path = root / "alice" / "04_adam.ipynb"
    written = write_feedback(tmp_path / "feedback", root, [(path, report)])
    outputs = {
        "format": report.format(),
        "json": json.dumps(report.to_dict()),
        "csv": csv_bytes(root, [(path, report)]).decode("utf-8"),
        **{p.name: p.read_text(encoding="utf-8") for p in written},
    }
    assert sorted(Path(p).name for p in written) == ["04_adam.json", "04_adam.txt"]
    for name, text in outputs.items():
        bad = [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]
        assert bad == [] and "\u202e" not in text and "owned" not in text, (name, bad)
        assert "boom" in text or name == "csv", name


def test_csv_cells_that_would_start_a_formula_are_neutralised(tmp_path):
    """Every CSV cell starting with =, +, -, @, tab or carriage return gets a leading quote;
    the CSV has a student column, and scores stay numbers."""
    import csv
    import io

    from vae_numpy.assignments.report import csv_bytes, csv_cell

    for text in ("=1+2", "+1", "-1", "@SUM(A1)", "\t=1"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("\r=1") == "\n=1"  # a carriage return is no control character in a cell
    assert (csv_cell("fine = yes"), csv_cell(10), csv_cell(None)) == ("fine = yes", 10, "")
    report = _hostile_report()
    root = tmp_path / "class"
    rows = list(
        csv.DictReader(io.StringIO(csv_bytes(root, [(root / "=x" / "a.ipynb", report)]).decode()))
    )
    (row,) = rows
    assert row["student"] == "'=x" and row["submission"] == "'=x/a.ipynb"
    assert row["problems"].startswith("'+cmd") and row["flags"].startswith("'@SUM")
    assert (row["score"], row["max_score"], row["test_one"]) == ("0", "2", "0")


def test_the_file_name_or_assignment_decides_and_other_metadata_is_flagged(tmp_path):
    """The assignment comes from --assignment, else the file name (never the metadata); a
    notebook whose metadata names another assignment is flagged; a name that tells nothing
    is refused with a message naming --assignment."""
    import nbformat
    import pytest

    from vae_numpy.assignments import GradingError, list_assignments
    from vae_numpy.assignments.notebooks import assignment_from_name, detect_assignment

    known = list_assignments()
    for name in ("04_adam.ipynb", "04_adam-Copy1.ipynb", "alice_adam.ipynb", "04_adam_dense.ipynb"):
        found = assignment_from_name(tmp_path / name, known)
        assert found is not None and found.stem == "04_adam", name
    for name in ("homework.ipynb", "dense_layer_and_adam.ipynb", "04.ipynb"):
        assert assignment_from_name(tmp_path / name, known) is None, name

    nb = nbformat.v4.new_notebook(metadata={"vae_numpy": {"assignment": "01_dense_layer"}})
    path, flags = detect_assignment(tmp_path / "04_adam.ipynb", nb, known)
    assert path.stem == "04_adam"
    assert flags == ["metadata says 01_dense_layer, graded as 04_adam from its file name"]
    path, flags = detect_assignment(tmp_path / "x.ipynb", nb, known, "adam")
    assert path.stem == "04_adam" and flags[0].endswith("graded as 04_adam from --assignment")
    path, flags = detect_assignment(tmp_path / "mine.ipynb", nb, known, "1")
    assert path.stem == "01_dense_layer" and flags == []
    with pytest.raises(GradingError, match="cannot tell which assignment.*--assignment NAME"):
        detect_assignment(tmp_path / "homework.ipynb", nb, known)
    with pytest.raises(GradingError, match="unknown assignment 'nope'"):
        detect_assignment(tmp_path / "04_adam.ipynb", nb, known, "nope")


def test_grade_all_prints_and_writes_no_escape_codes_from_a_file_name(tmp_path, capsys):
    """A submission whose file name carries escape codes is reported (not graded: unreadable)
    without them, on the console, in the CSV and in its feedback file at --feedback DIR."""
    folder = tmp_path / "class"
    (folder / "mallory").mkdir(parents=True)
    (folder / "mallory" / "04_adam\x1b[2K\x1b[1G.ipynb").write_text("not json")
    table = tmp_path / "grades.csv"
    argv = ["assignments", "grade-all", str(folder), "--csv", str(table)]
    assert main([*argv, "--feedback", str(tmp_path / "back"), "--jobs", "1"]) == 1
    printed = capsys.readouterr()
    written = [table, *sorted((tmp_path / "back").rglob("*.*"))]
    assert len(written) == 3
    for text in [printed.out + printed.err, *(p.read_text(encoding="utf-8") for p in written)]:
        assert "\x1b" not in text and "not a readable" in text
    assert "mallory,mallory/04_adam.ipynb," in table.read_text(encoding="utf-8")


# --- every model of the family: train, sample, evaluate ------------------------------------------


def _train(out, *options):
    """Train a small model on the digits for one epoch (a second or two)."""
    argv = ["train", "--epochs", "1", "--hidden", "16", "--out", str(out), "--no-progress"]
    return main([*argv, *options])


@pytest.mark.parametrize(
    ("options", "figures"),
    [
        (["--model", "cvae"], ["samples.png", "analogies.png", "reconstructions.png"]),
        (["--model", "gmvae", "--components", "4"], ["samples.png", "components.png"]),
        (["--model", "ssvae", "--labels", "50"], ["samples.png"]),
        (["--importance-samples", "3", "--activation", "elu"], ["samples.png", "manifold.png"]),
    ],
    ids=["cvae", "gmvae", "ssvae", "vae-k3-elu"],
)
def test_train_sample_and_evaluate_every_model(tmp_path, capsys, options, figures):
    """Each --model trains with its options, then sample and evaluate read its file."""
    from vae_numpy.models import load_model

    assert _train(tmp_path, *options) == 0
    for name in figures:
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE, name
    model = load_model(tmp_path / "model.npz")
    config = model.get_config()
    if "--components" in options:
        assert config["n_components"] == 4
    if "--importance-samples" in options:
        assert config["k"] == 3 and config["activation"] == "elu"
    png, model_file = tmp_path / "s.png", str(tmp_path / "model.npz")
    assert main(["sample", "--model", model_file, "-n", "6", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    capsys.readouterr()
    assert main(["evaluate", "--model", model_file, "--iwae-k", "20", "--max-examples", "30"]) == 0
    text = capsys.readouterr().out
    elbo = float(re.search(r"ELBO\s+(-?\d+\.\d+)", text).group(1))
    iwae = float(re.search(r"IWAE \(k=20\)\s+(-?\d+\.\d+)", text).group(1))
    assert elbo < iwae + 0.5  # the one-sample ELBO lies below the bound, up to noise
    bound_on = "ln p(x|y)" if model.conditional else "ln p(x)"
    assert f"bounds {bound_on}" in text


def test_train_ssvae_keeps_the_number_of_labels_asked_for(tmp_path, capsys):
    """--labels N: the run says N labelled examples and prints the classifier's accuracy."""
    assert _train(tmp_path, "--model", "ssvae", "--labels", "30") == 0
    out = capsys.readouterr().out
    assert "; 30 labelled" in out
    assert re.search(r"test accuracy of q\(y\|x\): \d\.\d{4}", out)


def test_labelled_subset_takes_the_classes_in_turn():
    """labelled_subset(y, n) picks n distinct rows, n // C of each class (balanced)."""
    from vae_numpy.cli import labelled_subset

    y = np.repeat(np.arange(4), [50, 10, 30, 20])
    rows = labelled_subset(y, 20, seed=0)
    assert len(set(rows.tolist())) == 20
    np.testing.assert_array_equal(np.bincount(y[rows], minlength=4), [5, 5, 5, 5])


def test_sample_names_the_labels_it_drew_and_takes_a_chosen_label(tmp_path, capsys):
    """sample on a CVAE prints the label of every image; --label L draws only class L."""
    assert _train(tmp_path, "--model", "cvae") == 0
    model_file, png = str(tmp_path / "model.npz"), str(tmp_path / "s.png")
    capsys.readouterr()
    assert main(["sample", "--model", model_file, "-n", "9", "--seed", "4", "--out", png]) == 0
    text = capsys.readouterr().out
    rows = text.split("row by row as in the grid:\n")[1].split("\nwrote")[0].splitlines()
    drawn = [int(v) for row in rows for v in row.split()]
    assert len(drawn) == 9 and len(rows) == 3 and all(0 <= v < 10 for v in drawn)
    assert len(set(drawn)) > 1  # drawn uniformly, not one class
    assert main(["sample", "--model", model_file, "-n", "4", "--label", "7", "--out", png]) == 0
    text = capsys.readouterr().out
    assert text.split("grid:\n")[1].split("\nwrote")[0].split() == ["7"] * 4


def test_options_of_one_model_are_refused_for_another(tmp_path, capsys):
    """--components on a VAE, --label on a VAE file, --label out of range: one-line errors."""
    assert _train(tmp_path / "vae") == 0
    assert _train(tmp_path / "x", "--components", "3") == 2
    assert "--components applies to --model gmvae only" in capsys.readouterr().err
    assert _train(tmp_path / "x", "--model", "ae", "--beta", "2") == 2
    assert "--model ae has none to weight" in capsys.readouterr().err
    vae_file, png = str(tmp_path / "vae" / "model.npz"), str(tmp_path / "s.png")
    assert main(["sample", "--model", vae_file, "--label", "3", "--out", png]) == 2
    assert "takes no label" in capsys.readouterr().err
    assert _train(tmp_path / "cvae", "--model", "cvae") == 0
    cvae_file = str(tmp_path / "cvae" / "model.npz")
    assert main(["sample", "--model", cvae_file, "--label", "10", "--out", png]) == 2
    assert "classes are 0 .. 9" in capsys.readouterr().err
