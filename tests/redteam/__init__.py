"""Red-team corpus: hostile submissions to the classroom assignments, and tools to grade them.

:mod:`tests.redteam.notebooks` builds submissions from the released student copies,
:mod:`tests.redteam.corpus` holds the hostile submissions themselves (one small generator each),
:mod:`tests.redteam.processes` finds the processes a submission left behind, and
``python -m tests.redteam.table`` grades every hostile submission and prints what it scored.
"""
