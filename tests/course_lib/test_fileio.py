"""course_lib.fileio: a reader sees the old file or the new one, never a half."""

from __future__ import annotations

from pathlib import Path

import pytest

from course_lib.fileio import atomic_write, atomic_write_with


def test_atomic_write_replaces_text_and_bytes(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    assert atomic_write(target, "héllo\n") == target
    assert target.read_text(encoding="utf-8") == "héllo\n"
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "grades.csv"
    target.write_text("old", encoding="utf-8")

    def half(handle: object) -> None:
        handle.write("new, but")  # type: ignore[attr-defined]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_with(target, half)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["grades.csv"]


def test_the_temporary_is_hidden_from_a_glob_for_final_names(tmp_path: Path) -> None:
    seen: list[str] = []

    def look(handle: object) -> None:
        seen.extend(p.name for p in tmp_path.glob("*.msg"))
        seen.extend(p.name for p in tmp_path.iterdir())

    atomic_write_with(tmp_path / "a.q.msg", look)
    assert seen and all(name.startswith(".") and name.endswith(".part") for name in seen)
