"""The README's API tour is a runnable doctest: its printed numbers stay true."""

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
    assert source.count(">>>") > 20
    parser = doctest.DocTestParser()
    test = parser.get_doctest(source, {}, "README.md", str(README), 0)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} README example(s) print something else"


def test_readme_students_commands_print_what_they_show(tmp_path, monkeypatch, capsys):
    """The "For students" console example, run in an empty folder, prints the lines shown."""
    from vae_numpy.cli import main

    section = README.read_text(encoding="utf-8").split("## For students", 1)[1].split("\n## ")[0]
    (block,) = re.findall(r"```console\n(.*?)```", section, flags=re.S)
    command, *shown = block.strip().splitlines()
    assert command.startswith("$ vae/bin/vae-numpy ")
    monkeypatch.chdir(tmp_path)
    assert main(command.split()[2:]) == 0
    printed = capsys.readouterr().out.splitlines()
    position = 0
    for line in shown:
        if line == "...":
            continue
        assert line in printed[position:], f"README shows {line!r}; the command printed {printed}"
        position = printed.index(line, position) + 1
    assert (tmp_path / "vae-course" / "assignments").is_dir()
