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
