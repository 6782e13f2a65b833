"""Winnowed fingerprints of normalised code, and the comparisons made with them.

The middle step of the copy detection (normalise -> fingerprint -> flag; the method is explained
in :mod:`~vae_numpy.assignments.integrity`, steps 2 and 3). :func:`fingerprints` hashes every
k-gram of :func:`~vae_numpy.assignments.tokens.normalized_tokens` and keeps the minimum of every
window (Schleimer, Wilkerson & Aiken, "Winnowing: local algorithms for document
fingerprinting", SIGMOD 2003); :func:`containment`, :func:`similarity`, :func:`copy_score`,
:func:`is_copy` and :func:`near_identical_pairs` compare sets of them, and
:func:`matched_lines` says where a match sits in the student's code. The flags built on them
are in :mod:`~vae_numpy.assignments.integrity`.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .tokens import MAX_TOKENS, normalize_within_cap

__all__ = [
    "DEFAULT_SIMILARITY",
    "MIN_FINGERPRINTS",
    "MIN_MATCHED",
    "KGRAM",
    "WINDOW",
    "Fingerprints",
    "fingerprints",
    "containment",
    "similarity",
    "matched_lines",
    "copy_score",
    "is_copy",
    "near_identical_pairs",
]

DEFAULT_SIMILARITY = 0.85
"""Share (0 to 1) of the student's fingerprints found in a source from which code is flagged."""

MIN_FINGERPRINTS = 30
"""Code with fewer distinct fingerprints of its own than this is never flagged as copied."""

MIN_MATCHED = 80
"""Matched fingerprints that flag code whatever their share: a long passage is a copy even
inside a longer submission."""

KGRAM = 9
"""Tokens per k-gram: shorter matches are noise (``V = V + V`` is in every program)."""

WINDOW = 4
"""Winnowing window: every match of ``KGRAM + WINDOW - 1`` tokens shares a fingerprint."""

_EXCERPT_LINES = 4  # lines of the student's code quoted in a flag


@dataclass
class Fingerprints:
    """Winnowed fingerprints of some code.

    Attributes
    ----------
    hashes : dict of int to list of (str, int)
        Each fingerprint and where it occurs: ``(label, line)``, the cell's label and the line
        in that cell where the k-gram starts.
    tokens : int
        Normalised tokens read.
    truncated : bool
        True when :data:`~vae_numpy.assignments.tokens.MAX_TOKENS` was reached and the rest
        was not read.
    texts : dict of str to str
        The code of each label, for quoting matched lines.
    """

    hashes: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    tokens: int = 0
    truncated: bool = False
    texts: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, code: str) -> None:
        """Fingerprint ``code`` (one cell) under ``label`` and add it, within the token cap."""
        self.texts[label] = code
        room = MAX_TOKENS - self.tokens
        if room <= 0:
            self.truncated = True
            return
        toks, cut = normalize_within_cap(code)
        self.truncated = self.truncated or cut
        if len(toks) > room:
            toks, self.truncated = toks[:room], True
        self.tokens += len(toks)
        for value, line in _winnow(toks):
            self.hashes.setdefault(value, []).append((label, line))

    def without(self, other: Fingerprints) -> Fingerprints:
        """These fingerprints less those of ``other`` (e.g. the released template)."""
        kept = {h: w for h, w in self.hashes.items() if h not in other.hashes}
        return Fingerprints(kept, self.tokens, self.truncated, dict(self.texts))

    def __len__(self) -> int:
        return len(self.hashes)


def _winnow(toks: Sequence[tuple[str, int]]) -> list[tuple[int, int]]:
    """``(hash, line)`` of the fingerprints winnowing selects from ``toks`` (linear time)."""
    ids = [zlib.crc32(t.encode("utf-8", "replace")) for t, _ in toks]
    if not ids:
        return []
    if len(ids) < KGRAM:  # too short for one k-gram: the whole of it is the one fingerprint
        return [(hash(tuple(ids)), toks[0][1])]
    grams = [hash(tuple(ids[i : i + KGRAM])) for i in range(len(ids) - KGRAM + 1)]
    picked: list[tuple[int, int]] = []
    window: deque[int] = deque()  # indices of grams, their hashes increasing
    last = -1
    for i, value in enumerate(grams):
        while window and grams[window[-1]] >= value:
            window.pop()
        window.append(i)
        if window[0] <= i - WINDOW:
            window.popleft()
        if i >= WINDOW - 1 and window[0] != last:
            last = window[0]
            picked.append((grams[last], toks[last][1]))
    return picked


def fingerprints(code: str | Sequence[tuple[str, str]]) -> Fingerprints:
    """The :class:`Fingerprints` of ``code``: a string, or ``(label, code)`` pairs (cells)."""
    out = Fingerprints()
    for label, text in [("code", code)] if isinstance(code, str) else code:
        out.add(label, text)
    return out


def containment(mine: Fingerprints, theirs: Fingerprints | Iterable[int]) -> float:
    """Share of ``mine``'s distinct fingerprints that ``theirs`` holds (0.0 when mine is empty)."""
    if not mine.hashes:
        return 0.0
    other = theirs.hashes if isinstance(theirs, Fingerprints) else set(theirs)
    return sum(1 for h in mine.hashes if h in other) / len(mine.hashes)


def similarity(a: Sequence[str], b: Sequence[str]) -> float:
    """How alike two pieces of code given as token sequences are (1.0: the same after
    normalisation): the larger share of either side's fingerprints found in the other."""
    fa, fb = fingerprints(" ".join(a)), fingerprints(" ".join(b))
    return max(containment(fa, fb), containment(fb, fa))


def matched_lines(mine: Fingerprints, matched: Iterable[int]) -> str:
    """Where the matched fingerprints sit in the student's code: per cell, the line ranges and
    an excerpt of the first few lines."""
    lines: dict[str, set[int]] = {}
    for h in matched:
        for label, line in mine.hashes.get(h, []):
            lines.setdefault(label, set()).add(line)
    parts = []
    for label, found in lines.items():
        ranges = _ranges(sorted(found))
        text = mine.texts.get(label, "").split("\n")
        first = min(found)
        excerpt = " | ".join(
            text[i - 1].strip()
            for i in range(first, min(first + _EXCERPT_LINES, len(text) + 1))
            if text[i - 1].strip()
        )
        parts.append(f"{label} lines {ranges}: {excerpt[:240]}")
    return "; ".join(parts)


def _ranges(numbers: Sequence[int]) -> str:
    out: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n <= prev + 2:  # a gap of one line is the same passage
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out[:6]) + (", ..." if len(out) > 6 else "")


def copy_score(mine: Fingerprints, sources: Mapping[str, Fingerprints]) -> tuple[float, list[str]]:
    """The share of ``mine`` found in the sources together, and the sources that hold any of
    it, most first."""
    union: set[int] = set()
    counts = {}
    for name, theirs in sources.items():
        shared = {h for h in mine.hashes if h in theirs.hashes}
        union |= shared
        if shared:
            counts[name] = len(shared)
    order = sorted(counts, key=lambda n: (-counts[n], n))
    return (len(union) / len(mine) if len(mine) else 0.0), order


def is_copy(score: float, size: int, threshold: float = DEFAULT_SIMILARITY) -> bool:
    """The decision: ``size`` distinct fingerprints of which a share ``score`` matched are a
    copy when the share reaches ``threshold`` (and ``size`` :data:`MIN_FINGERPRINTS`), or when
    the matched fingerprints reach :data:`MIN_MATCHED`."""
    if size < MIN_FINGERPRINTS:
        return False
    return score >= threshold or round(score * size) >= MIN_MATCHED


def near_identical_pairs(
    tokens: Mapping[str, tuple[str, Fingerprints]], threshold: float = DEFAULT_SIMILARITY
) -> list[tuple[str, str, float]]:
    """``(a, b, similarity)`` for every two submissions of the same assignment whose own code
    is alike; ``tokens`` maps a submission's name to (assignment,
    :func:`~vae_numpy.assignments.integrity.own_fingerprints`).

    The similarity of a pair is the share of the smaller submission's fingerprints that the
    other holds. Pairs are found through an inverted index (fingerprint -> submissions), so
    the work grows with the fingerprints shared, not with the square of the class; a
    fingerprint held by more than half of a class of ten or more is common code and skipped.
    """
    groups: dict[str, list[str]] = {}
    for name, (assignment, prints) in tokens.items():
        if len(prints) >= MIN_FINGERPRINTS:
            groups.setdefault(assignment, []).append(name)
    pairs = []
    for names in groups.values():
        names.sort()
        index: dict[int, list[int]] = {}
        for i, name in enumerate(names):
            for h in tokens[name][1].hashes:
                index.setdefault(h, []).append(i)
        common = len(names) // 2 if len(names) >= 10 else len(names)
        shared: dict[tuple[int, int], int] = {}
        for holders in index.values():
            if len(holders) < 2 or len(holders) > common:
                continue
            for x in range(len(holders)):
                for y in range(x + 1, len(holders)):
                    key = (holders[x], holders[y])
                    shared[key] = shared.get(key, 0) + 1
        for (i, j), count in sorted(shared.items()):
            a, b = names[i], names[j]
            size = min(len(tokens[a][1]), len(tokens[b][1]))
            ratio = count / size
            if is_copy(ratio, size, threshold):
                pairs.append((a, b, ratio))
    return pairs
