"""Grading a large class in shards (grade-all --shard K/N) and joining them (merge)."""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat
import pytest

from vae_numpy.assignments import GradingError, main, merge_grades
from vae_numpy.assignments.classroom import parse_shard, shard_of

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = ROOT / "notebooks" / "assignments" / "source"
RELEASE_DIR = ROOT / "notebooks" / "assignments" / "release"
HONEST = ROOT / "tests" / "copy_corpus" / "04_adam" / "honest_3_helpers.txt"


def test_parse_shard_takes_k_of_n_and_names_the_mistake():
    assert parse_shard("3/10") == (3, 10)
    assert parse_shard("1/1") == (1, 1)
    for bad in ("0/3", "4/3", "3", "a/b", "1/2/3", "-1/2", ""):
        with pytest.raises(ValueError, match="K/N"):
            parse_shard(bad)


def test_every_student_is_in_one_shard_and_shards_are_about_even():
    """A student's shard depends on the name alone (the same in every process and whoever
    else handed in), lies in 1..N, and 1,000 students split about evenly."""
    names = [f"student{i:04d}" for i in range(1000)]
    counts = {k: 0 for k in range(1, 5)}
    for name in names:
        k = shard_of(name, 4)
        assert 1 <= k <= 4 and shard_of(name, 4) == k
        counts[k] += 1
    assert all(200 <= c <= 300 for c in counts.values()), counts
    assert {shard_of(name, 1) for name in names} == {1}
    assert len({shard_of(name, 7) for name in names}) == 7


def _with_answer(code: str) -> nbformat.NotebookNode:
    nb = nbformat.read(RELEASE_DIR / "04_adam.ipynb", 4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "adam":
            cell.source = code
    return nb


def _class_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Four students in two shards: two hand in the same honest code, one in each shard; one
    hands in the published solution, one the untouched copy."""
    first = [n for n in (f"s{i}" for i in range(100)) if shard_of(n, 2) == 1][:2]
    second = [n for n in (f"s{i}" for i in range(100)) if shard_of(n, 2) == 2][:2]
    who = {"twin_a": first[0], "twin_b": second[0], "solved": first[1], "stub": second[1]}
    honest = HONEST.read_text(encoding="utf-8").split("\n", 1)[1]  # drop "# %% adam"
    folder = tmp_path / "class"
    notebooks = {
        "twin_a": _with_answer(honest),
        "twin_b": _with_answer(honest),
        "solved": nbformat.read(SOURCE_DIR / "04_adam.ipynb", 4),
        "stub": nbformat.read(RELEASE_DIR / "04_adam.ipynb", 4),
    }
    for role, nb in notebooks.items():
        (folder / who[role]).mkdir(parents=True)
        nbformat.write(nb, folder / who[role] / "04_adam.ipynb")
    return folder, who


def test_shards_graded_apart_merge_into_one_table_with_pairs_across_shards(tmp_path, capsys):
    """Each shard grades only its students and compares no pairs; the merge has every row
    once, in the class folder's order, the pair split across the shards flagged on both
    rows, and every feedback file."""
    folder, who = _class_folder(tmp_path)
    shards = []
    for k in (1, 2):
        table = tmp_path / f"grades-{k}.csv"
        argv = ["grade-all", str(folder), "--csv", str(table), "--shard", f"{k}/2"]
        assert main([*argv, "--source", str(SOURCE_DIR), "--seed", "7", "--jobs", "2"]) == 0
        rows = list(csv.DictReader(table.open(encoding="utf-8")))
        assert {r["student"] for r in rows} == {n for n in who.values() if shard_of(n, 2) == k}
        assert not any("near-identical" in r["flags"] for r in rows)
        shards.append(table)
    capsys.readouterr()
    merged = tmp_path / "grades.csv"
    argv = ["merge", str(folder), *map(str, shards), "--csv", str(merged)]
    assert main([*argv, "--source", str(SOURCE_DIR)]) == 0
    assert "4 submissions from 2 shards, 0 not graded, 1 near-identical pairs" in (
        capsys.readouterr().out
    )
    rows = {r["student"]: r for r in csv.DictReader(merged.open(encoding="utf-8"))}
    assert list(rows) == sorted(who.values())
    assert rows[who["solved"]]["score"] == "10" and rows[who["stub"]]["score"] == "0"
    assert rows[who["twin_a"]]["score"] == rows[who["twin_b"]]["score"] == "10"
    assert f"near-identical to {who['twin_b']}/04_adam.ipynb" in rows[who["twin_a"]]["flags"]
    assert f"near-identical to {who['twin_a']}/04_adam.ipynb" in rows[who["twin_b"]]["flags"]
    assert "near-copy of the published solution" in rows[who["solved"]]["flags"]
    assert "near-identical" not in rows[who["stub"]]["flags"] + rows[who["solved"]]["flags"]
    for k, shard in enumerate(shards, start=1):  # the other cells as the shards wrote them
        for row in csv.DictReader(shard.open(encoding="utf-8")):
            kept = {c: v for c, v in rows[row["student"]].items() if c != "flags"}
            assert kept == {c: v for c, v in row.items() if c != "flags"}, k
    feedback = tmp_path / "grades-feedback"
    assert sorted(p.relative_to(feedback).as_posix() for p in feedback.rglob("*.*")) == sorted(
        f"{n}/04_adam.{ext}" for n in who.values() for ext in ("txt", "json")
    )
    assert "Total: 0 / 10" in (feedback / who["stub"] / "04_adam.txt").read_text()


def _shard_csv(path: Path, students: list[str]) -> Path:
    header = "student,submission,assignment,score,max_score,error,problems,flags,seed,t\n"
    rows = "".join(f"{s},{s}/04_adam.ipynb,04_adam,3,10,,,,1,3\n" for s in students)
    path.write_text(header + rows, encoding="utf-8")
    return path


def test_merge_refuses_shards_that_miss_or_double_a_submission(tmp_path):
    """A missing shard, a shard given twice, or a CSV of another class is named, and nothing
    is written."""
    folder, who = _class_folder(tmp_path)
    names = sorted(who.values())
    one = _shard_csv(tmp_path / "one.csv", names[:2])
    two = _shard_csv(tmp_path / "two.csv", names[2:])
    out = tmp_path / "merged.csv"
    with pytest.raises(GradingError, match=f"in no shard's CSV: {names[2]}/04_adam.ipynb"):
        merge_grades(folder, [one], out, source_dir=SOURCE_DIR)
    with pytest.raises(GradingError, match=f"in two shards' CSVs: {names[0]}/04_adam.ipynb"):
        merge_grades(folder, [one, two, one], out, source_dir=SOURCE_DIR)
    other = _shard_csv(tmp_path / "other.csv", ["zed"])
    with pytest.raises(GradingError, match="not in .*zed/04_adam.ipynb"):
        merge_grades(folder, [one, two, other], out, source_dir=SOURCE_DIR)
    (tmp_path / "bad.csv").write_text("name,points\nx,1\n")
    with pytest.raises(GradingError, match="not a grade-all CSV file"):
        merge_grades(folder, [tmp_path / "bad.csv"], out, source_dir=SOURCE_DIR)
    assert not out.exists()
    done = merge_grades(folder, [two, one], out, source_dir=SOURCE_DIR)
    assert (done["rows"], done["not_graded"], done["feedback_files"]) == (4, 0, 0)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["student"] for r in rows] == names and {r["t"] for r in rows} == {"3"}


def test_merge_keeps_a_formula_in_a_shard_csv_inert(tmp_path):
    """A cell that would start a spreadsheet formula stays neutralised after the merge."""
    folder, who = _class_folder(tmp_path)
    names = sorted(who.values())
    table = _shard_csv(tmp_path / "all.csv", names)
    text = table.read_text().replace(f"{names[0]},{names[0]}/04_adam.ipynb,04_adam,3,10,,", (
        f"{names[0]},{names[0]}/04_adam.ipynb,04_adam,3,10,=HYPERLINK(1),"
    ))  # fmt: skip
    table.write_text(text)
    out = tmp_path / "merged.csv"
    done = merge_grades(folder, [table], out, source_dir=SOURCE_DIR)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows[0]["error"] == "'=HYPERLINK(1)" and done["not_graded"] == 1
