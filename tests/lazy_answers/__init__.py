"""Lazy answers, per chapter: the right values without the technique the exercise teaches.

Each module `tests/lazy_answers/<chapter>.py` defines

    LAZY_ANSWERS: dict[str, dict[str, list[str]]]  # notebook -> solution grade_id -> sources

Every source replaces the solution cell of that exercise: a serial loop where
threads or processes are asked, a hard-coded result, NumPy where shared memory
is asked, one global lock instead of a lock order, and so on. The chapter
round trip (tests/integration/test_chapters.py) grades each one and proves it loses the
exercise's points, while the reference keeps full marks.
"""
