"""The README's examples run: its Python block prints what it shows, its student steps work."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_examples_print_what_they_show():
    """Every ```python block of the README runs and prints exactly what the README shows."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    source = "\n".join(b for b in blocks if ">>>" in b)
    assert source.count(">>>") >= 10
    parser = doctest.DocTestParser()
    test = parser.get_doctest(source, {}, "README.md", str(README), 0)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} README example(s) print something else"


def test_readme_students_steps_copy_the_notebooks(tmp_path, monkeypatch, capsys):
    """The "For students" step 2 command, run in an empty folder, writes the notebooks it names."""
    from vae_numpy.cli import main

    section = README.read_text(encoding="utf-8").split("## For students", 1)[1].split("\n## ")[0]
    (command,) = re.findall(r"`(vae/bin/vae-numpy notebooks [^`]+)`", section)
    monkeypatch.chdir(tmp_path)
    assert main(command.split()[1:]) == 0
    folder = tmp_path / command.split()[-1]
    assert f"open them with: jupyter lab {command.split()[-1]}" in capsys.readouterr().out
    assert len(list(folder.glob("*.ipynb"))) == 6
    assert len(list((folder / "assignments").glob("*.ipynb"))) == 6
    assert f"vae/bin/jupyter lab {command.split()[-1]}" in section
