"""Copy detection (vae_numpy.assignments.integrity): honest solutions written independently are
not flagged, paraphrased copies of the published solution and of the library's code are, and
the comparison is linear in the length of the code.

The corpus lives in tests/copy_corpus/<assignment>/: ``honest_*.txt`` are independently
written, correct solutions in different styles; ``paraphrase_*.txt`` are copies of the
published solution or of the library's code, disguised by renaming, reordering, changed loop
style, split expressions, in-place operations and changed comments. Each file holds the
solution cells, each starting with a line ``# %% <grade_id>``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from vae_numpy.assignments.grade import compose
from vae_numpy.assignments.integrity import (
    DEFAULT_SIMILARITY,
    LIBRARY_SHARE,
    MAX_TOKENS,
    MIN_FINGERPRINTS,
    MIN_WHOLE,
    WHOLE_SHARE,
    Fingerprints,
    copy_flag,
    copy_score,
    fingerprints,
    library_passages,
    library_source,
    near_identical_pairs,
    normalized_tokens,
    own_fingerprints,
    source_fingerprints,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = ROOT / "notebooks" / "assignments" / "source"
RELEASE_DIR = ROOT / "notebooks" / "assignments" / "release"
CORPUS = Path(__file__).resolve().parent / "copy_corpus"
HONEST = sorted(CORPUS.glob("*/honest_*.txt"))
PARAPHRASES = sorted(CORPUS.glob("*/paraphrase_*.txt"))

# Paraphrases the comparison does not catch, and why. It copies library code that is the
# textbook answer written as an honest student also writes it, so nothing in it tells a copy
# from an independent solution: the comparison would have to flag honest students to catch it.
MISSED = {
    "04_adam/paraphrase_library_1_optim_update.txt": (
        "score 0.83 < 0.85; the lines of Adam._update it copies are the textbook update in the "
        "in-place form honest_2_inplace also uses (0.56 of it found in optim.Adam, 16 "
        "fingerprints optim.Adam does not share with the published solution; the copy: 0.60, 14)"
    ),
}


def corpus_cells(path: Path) -> dict[str, str]:
    """grade_id -> code of one corpus file (cells start with a line ``# %% <grade_id>``)."""
    cells: dict[str, str] = {}
    current, lines = None, []
    for line in path.read_text(encoding="utf-8").split("\n") + ["# %% end"]:
        found = re.match(r"^# %% (\S+)$", line)
        if found:
            if current is not None:
                cells[current] = "\n".join(lines).strip("\n")
            current, lines = found.group(1), []
        else:
            lines.append(line)
    return cells


def submission(assignment: str, cells: dict[str, str]) -> Any:
    """The released student copy with the given solution cells filled in."""
    nb = nbformat.read(RELEASE_DIR / f"{assignment}.ipynb", 4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in cells:
            cell.source = cells[gid]
    return nb


def composed(path: Path) -> tuple[Any, Any, Any]:
    """(source, composed notebook, roles) of a corpus file, as grading composes them."""
    assignment = path.parent.name
    source = nbformat.read(SOURCE_DIR / f"{assignment}.ipynb", 4)
    nb, roles, _ = compose(source, submission(assignment, corpus_cells(path)))
    return source, nb, roles


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_corpus_has_five_honest_solutions_for_each_assignment():
    """At least five independently written solutions per calibrated assignment."""
    for assignment in (
        "01_dense_layer",
        "03_kl_divergence",
        "04_adam",
        "06_importance_weighted_bound",
    ):
        assert len(list((CORPUS / assignment).glob("honest_*.txt"))) >= 5, assignment


@pytest.mark.parametrize("path", HONEST, ids=_id)
def test_honest_solution_is_not_flagged(path):
    """An independently written solution is not flagged as a copy."""
    source, nb, roles = composed(path)
    assert copy_flag(source, nb, roles) is None


@pytest.mark.parametrize("path", PARAPHRASES, ids=_id)
def test_paraphrased_copy_is_flagged(path):
    """A disguised copy of the published solution or of the library's code is flagged, and
    the flag names the source, the score and the student's matched lines."""
    if _id(path) in MISSED:
        pytest.xfail(f"known limit of the comparison: {MISSED[_id(path)]}")
    source, nb, roles = composed(path)
    flag = copy_flag(source, nb, roles)
    assert flag is not None
    want = "the published solution" if "published" in path.name else "vae_numpy."
    assert flag.startswith("near-copy of ") and want in flag, flag
    assert "% of the" in flag and "lines" in flag, flag


def test_honest_scores_stay_below_and_copies_above_the_threshold():
    """The calibration: every honest score is below the threshold; every caught paraphrase is
    at or above it (or matches a long passage)."""
    honest = []
    for path in HONEST:
        source, nb, roles = composed(path)
        score, _ = copy_score(own_fingerprints(source, nb, roles), source_fingerprints(source))
        honest.append(score)
    assert max(honest) < DEFAULT_SIMILARITY


def test_no_honest_solution_reproduces_a_library_source():
    """No honest solution holds half of a library source's own code (what the published
    solution does not share); the copy of the blocked Adam kernel does."""
    for path in HONEST:
        source, nb, roles = composed(path)
        mine = own_fingerprints(source, nb, roles)
        assert library_passages(mine, source_fingerprints(source)) == {}, _id(path)
    source, nb, roles = composed(CORPUS / "04_adam" / "paraphrase_library_2_blocked_kernel.txt")
    found = library_passages(own_fingerprints(source, nb, roles), source_fingerprints(source))
    assert list(found) == ["vae_numpy.kernels.adam_update"]
    count, size = found["vae_numpy.kernels.adam_update"]
    assert count >= max(MIN_FINGERPRINTS, LIBRARY_SHARE * size)


def _prints(*spans: range) -> Fingerprints:
    return Fingerprints(hashes={h: [("cell", 1)] for span in spans for h in span})


def test_short_library_sources_pasted_whole_are_a_copy_together_not_alone():
    """Two helpers of 14 and 8 distinctive fingerprints pasted whole (the 06 paraphrase) flag
    the code; one of them alone, or both with one fingerprint in ten missing, does not."""
    sources = {
        "the published solution": _prints(range(1000, 1040)),
        "lse": _prints(range(0, 14)),
        "density": _prints(range(100, 108)),
    }
    both = _prints(range(0, 14), range(100, 108))
    assert 14 + 8 >= MIN_WHOLE > 14
    assert library_passages(both, sources) == {"lse": (14, 14), "density": (8, 8)}
    assert library_passages(_prints(range(0, 14)), sources) == {}
    assert WHOLE_SHARE > 12 / 14
    partial = _prints(range(0, 12), range(100, 108))
    assert library_passages(partial, sources) == {}
    # what the published solution also holds is the obvious answer and does not count
    sources["the published solution"] = _prints(range(0, 14))
    assert library_passages(both, sources) == {}


def test_released_template_alone_has_nothing_to_compare():
    """The untouched student copy leaves fewer fingerprints than the minimum (the template is
    subtracted), so it can never be flagged."""
    for path in sorted(RELEASE_DIR.glob("*.ipynb")):
        source = nbformat.read(SOURCE_DIR / path.name, 4)
        nb, roles, _ = compose(source, nbformat.read(path, 4))
        assert len(own_fingerprints(source, nb, roles)) < MIN_FINGERPRINTS, path.name


def test_published_solution_is_flagged_even_with_two_lines_swapped():
    """The published solution of 03, pasted with two independent lines swapped, is flagged."""
    source = nbformat.read(SOURCE_DIR / "03_kl_divergence.ipynb", 4)
    cells = _published(source)
    code = cells["kl_standard_normal_grad"]
    swapped = code.replace(
        "    d_mu = mu\n    d_log_var = 0.5 * (np.exp(log_var) - 1)",
        "    d_log_var = 0.5 * (np.exp(log_var) - 1)\n    d_mu = mu",
    )
    assert swapped != code
    cells["kl_standard_normal_grad"] = swapped
    nb, roles, _ = compose(source, submission("03_kl_divergence", cells))
    assert copy_flag(source, nb, roles) is not None


def _published(source: Any) -> dict[str, str]:
    out = {}
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            lines = [ln for ln in cell.source.split("\n") if "### " not in ln]
            out[meta["grade_id"]] = "\n".join(lines)
    return out


def test_grade_all_pair_differing_by_two_swaps_is_flagged():
    """Two submissions that differ by two swaps of independent statements are a flagged pair;
    two different honest solutions are not."""
    source = nbformat.read(SOURCE_DIR / "03_kl_divergence.ipynb", 4)
    first = corpus_cells(CORPUS / "03_kl_divergence" / "honest_4_loops.txt")
    second = dict(first)
    second["kl_standard_normal_grad"] = (
        first["kl_standard_normal_grad"]
        .replace("    d_mu = np.zeros_like(mu, dtype=np.float64)\n", "")
        .replace(
            "    d_log_var = np.zeros_like(log_var, dtype=np.float64)\n",
            "    d_log_var = np.zeros_like(log_var, dtype=np.float64)\n"
            "    d_mu = np.zeros_like(mu, dtype=np.float64)\n",
        )
    )
    second["kl_closed_form"] = first["kl_closed_form"].replace(
        "        log_term = math.log(d / b)\n"
        "        spread = (b * b + (a - c) * (a - c)) / (2.0 * d * d)\n",
        "        spread = (b * b + (a - c) * (a - c)) / (2.0 * d * d)\n"
        "        log_term = math.log(d / b)\n",
    )
    assert second != first
    other = corpus_cells(CORPUS / "03_kl_divergence" / "honest_2_variance_ratio.txt")
    prints = {}
    for name, cells in (("a", first), ("b", second), ("c", other)):
        nb, roles, _ = compose(source, submission("03_kl_divergence", cells))
        prints[name] = ("03", own_fingerprints(source, nb, roles))
    pairs = near_identical_pairs(prints)
    assert [(a, b) for a, b, _ in pairs] == [("a", "b")]
    assert pairs[0][2] > 0.95


def test_long_cells_compare_in_linear_time_under_a_token_cap():
    """Two submissions with an 8,000-line cell are fingerprinted and compared in well under a
    second on an idle machine. Asserted: the token cap is hit and named, and the whole takes
    under 10 s (a bound generous enough never to flake; the quadratic comparison this replaces
    took 55 s)."""
    source = nbformat.read(SOURCE_DIR / "04_adam.ipynb", 4)
    body = "\n".join(f"x{i} = x{i - 1} * {i % 7} + np.exp(y{i % 13})" for i in range(1, 8001))
    notebooks = {}
    for name, extra in (("a", "z = 1"), ("b", "z = 2")):
        notebooks[name] = compose(source, submission("04_adam", {"adam": f"{body}\n{extra}"}))
    start = time.perf_counter()
    prints = {
        n: ("04", own_fingerprints(source, nb, roles)) for n, (nb, roles, _) in notebooks.items()
    }
    pairs = near_identical_pairs(prints)
    elapsed = time.perf_counter() - start
    assert prints["a"][1].truncated and prints["a"][1].tokens <= MAX_TOKENS
    assert [(a, b) for a, b, _ in pairs] == [("a", "b")]
    assert elapsed < 10.0, f"{elapsed:.1f} s"
    nb, roles, _ = notebooks["a"]
    flag = copy_flag(source, nb, roles)
    assert flag is None or f"first {MAX_TOKENS:,} tokens" in flag


def test_normalisation_undoes_renaming_comments_augassign_reordering_and_loops():
    """Renamed variables, comments, `+=`, swapped independent lines, a while loop over an
    index and np.add(..., out=) give the tokens of the plain version."""
    plain = "def f(a, b):\n    s = a + b\n    t = a * b\n    for v in a:\n        s = s + v\n    return s, t\n"
    variants = [
        "def g(x, y):\n    # sum and product\n    total = x + y\n    prod = x * y\n"
        "    for w in x:\n        total += w\n    return total, prod\n",
        "def f(a, b):\n    t = b * a\n    s = b + a\n    i = 0\n    while i < len(a):\n"
        "        v = a[i]\n        np.add(s, v, out=s)\n        i += 1\n    return s, t\n",
    ]
    want = [t for t, _ in normalized_tokens(plain)]
    assert [t for t, _ in normalized_tokens(variants[0])] == want
    # the while form keeps `v = a[i]`; everything else agrees
    got = [t for t, _ in normalized_tokens(variants[1])]
    assert len(fingerprints(plain).hashes.keys() & fingerprints(variants[1]).hashes.keys()) > 0
    assert got.count("loop") == want.count("loop") == 1


def _tokens(code: str) -> list[str]:
    return [t for t, _ in normalized_tokens(code)]


def test_normalisation_undoes_aliases_element_loops_updates_and_named_constants():
    """An alias of a variable, a counted while loop over a copied list of keys reading its
    elements, an expression split into `x = a; x += b`, and a constant named once and used twice
    give the tokens of the plain version."""
    pairs = [
        (
            "obj = make(6)\nreport = check(obj, 2)\n",
            "mine = make(6)\nreport = check(mine, 2)\nobj = mine\n",
        ),
        (
            "def f(d, g):\n    for k, p in d.items():\n        p -= g[k]\n",
            "def f(d, g):\n    keys = list(d)\n    i = 0\n    while i < len(keys):\n"
            "        k = keys[i]\n        p = d[k]\n        p -= g[k]\n        i += 1\n",
        ),
        (
            "def f(a, b, c):\n    return a + b - c\n",
            "def f(a, b, c):\n    out = b + a\n    out -= c\n    return out\n",
        ),
        (
            "def f(z, v):\n    return sum(np.log(2 * np.pi) + z) - sum(np.log(2 * np.pi) + v)\n",
            "def f(z, v):\n    c = np.log(2 * np.pi)\n    return sum(c + z) - sum(c + v)\n",
        ),
    ]
    for plain, variant in pairs:
        assert _tokens(variant) == _tokens(plain), variant


def test_library_constants_are_written_out_as_a_student_would_paste_them():
    """The library code compared has its module's constants replaced by their values, so a
    pasted copy that writes the value matches it."""
    prints = source_fingerprints(
        nbformat.read(SOURCE_DIR / "06_importance_weighted_bound.ipynb", 4)
    )
    pasted = (
        "def gaussian_log_density(x, mean, log_var):\n"
        "    return -0.5 * (math.log(2.0 * math.pi) + log_var + (x - mean) ** 2 * np.exp(-log_var))\n"
    )
    theirs = prints["vae_numpy.functional.gaussian_log_density"]
    assert theirs.hashes.keys() <= fingerprints(pasted).hashes.keys()


def test_library_source_reads_the_package_files():
    """Every withheld reference of every assignment is found in the package's files, read with
    ast; a name that is not vae_numpy.MODULE.NAME is refused."""
    for path in sorted(SOURCE_DIR.glob("*.ipynb")):
        refs = nbformat.read(path, 4).metadata["vae_numpy"]["references"]
        for dotted in refs:
            text = library_source(dotted)
            assert text and dotted.rpartition(".")[2] in text, dotted
    assert library_source("vae_numpy.optim.Adam").startswith("class Adam")
    with pytest.raises(ValueError, match="vae_numpy.MODULE.NAME"):
        library_source("numpy.exp")
