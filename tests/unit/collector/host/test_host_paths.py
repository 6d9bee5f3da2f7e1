"""Path checks over real temporary trees with fixed mtimes and a fixed clock."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent.config import PathCheck, PathSettings
from collector.base import Collector
from collector.host.paths import PathCollector

if TYPE_CHECKING:
    from conftest import Readings

Run = Callable[[Collector], "Readings"]
DAY = 86400.0


def write(path: Path, size: int, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def backups(tmp_path: Path, now: float) -> Path:
    """A backup folder: two dumps, an old one in a subfolder, a note, and symlinks."""
    root = tmp_path / "backups"
    write(root / "db-2024-01-01.sql.gz", 100, now - 3 * DAY)
    write(root / "db-2024-01-02.sql.gz", 250, now - DAY)
    write(root / "notes.txt", 7, now - 10)
    write(root / "old" / "db-2023.sql.gz", 1000, now - 30 * DAY)
    write(tmp_path / "elsewhere" / "huge.sql.gz", 10_000, now)
    (root / "latest.sql.gz").symlink_to(root / "db-2024-01-02.sql.gz")
    (root / "linked").symlink_to(tmp_path / "elsewhere")  # never followed
    return root


def collector(*checks: PathCheck) -> PathCollector:
    return PathCollector(PathSettings(watch=list(checks)))


def test_recursive_directory_totals_and_ages(run: Run, backups: Path) -> None:
    got = run(collector(PathCheck(name="db", path=backups, pattern="*.sql.gz")))
    labels = {"name": "db", "path": str(backups)}

    assert got.value("opswatch_path_exists", **labels) == 1
    assert got.value("opswatch_path_files", **labels) == 3
    assert got.value("opswatch_path_size_bytes", **labels) == 100 + 250 + 1000
    assert got.value("opswatch_path_newest_age_seconds", **labels) == DAY
    assert got.value("opswatch_path_oldest_age_seconds", **labels) == 30 * DAY
    assert got.value("opswatch_path_scan_truncated", **labels) == 0
    assert got.value("opswatch_path_scan_errors", **labels) == 0


def test_non_recursive_scan_stays_in_the_top_folder(run: Run, backups: Path) -> None:
    check = PathCheck(name="db", path=backups, pattern="*.sql.gz", recursive=False)
    got = run(collector(check))

    assert got.value("opswatch_path_files", name="db", path=str(backups)) == 2
    assert got.value("opswatch_path_size_bytes", name="db", path=str(backups)) == 350
    assert got.value("opswatch_path_oldest_age_seconds", name="db", path=str(backups)) == 3 * DAY


def test_a_single_file(run: Run, backups: Path) -> None:
    note = backups / "notes.txt"
    got = run(collector(PathCheck(name="note", path=note)))

    assert got.value("opswatch_path_exists", name="note", path=str(note)) == 1
    assert got.value("opswatch_path_size_bytes", name="note", path=str(note)) == 7
    assert got.value("opswatch_path_files", name="note", path=str(note)) == 1
    assert got.value("opswatch_path_newest_age_seconds", name="note", path=str(note)) == 10


def test_a_missing_path_says_only_that_it_does_not_exist(run: Run, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    got = run(collector(PathCheck(name="gone", path=missing)))

    assert [(s.name, s.value) for s in got.samples] == [("opswatch_path_exists", 0)]


def test_an_empty_match_has_no_ages(run: Run, backups: Path) -> None:
    got = run(collector(PathCheck(name="tar", path=backups, pattern="*.tar")))

    assert got.value("opswatch_path_files", name="tar", path=str(backups)) == 0
    assert "opswatch_path_newest_age_seconds" not in got.names


def test_max_entries_truncates_and_says_so(run: Run, backups: Path) -> None:
    got = run(collector(PathCheck(name="db", path=backups, pattern="*.sql.gz", max_entries=2)))

    assert got.value("opswatch_path_scan_truncated", name="db", path=str(backups)) == 1
    assert got.value("opswatch_path_files", name="db", path=str(backups)) <= 2


def test_file_names_never_become_labels(run: Run, tmp_path: Path, now: float) -> None:
    write(tmp_path / 'evil"} 1\nx{a="', 3, now)
    got = run(collector(PathCheck(name="t", path=tmp_path)))

    assert {s.labels for s in got.samples} == {(("name", "t"), ("path", str(tmp_path)))}
    assert got.value("opswatch_path_size_bytes", name="t", path=str(tmp_path)) == 3


def test_deep_trees_need_no_recursion(run: Run, tmp_path: Path, now: float) -> None:
    deep = tmp_path.joinpath(*["d"] * 300)
    write(deep / "leaf.log", 5, now - 60)
    # A recursive walk would need a frame per level: leave it far fewer than 300 levels.
    # (The tree stays shallow enough for pytest's own recursive tmp_path cleanup.)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)
    try:
        got = run(collector(PathCheck(name="deep", path=tmp_path)))
    finally:
        sys.setrecursionlimit(limit)

    assert got.value("opswatch_path_files", name="deep", path=str(tmp_path)) == 1
    assert got.value("opswatch_path_newest_age_seconds", name="deep", path=str(tmp_path)) == 60


@pytest.fixture
def unreadable_old(monkeypatch: pytest.MonkeyPatch, backups: Path) -> Iterator[None]:
    """os.scandir refuses the `old` subfolder, as for a folder mode 0700 owned by someone else."""
    real_scandir = os.scandir

    def scandir(path: str) -> Iterator[os.DirEntry[str]]:
        if Path(path) == backups / "old":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    yield


@pytest.mark.usefixtures("unreadable_old")
def test_unreadable_folder_is_counted_not_raised(run: Run, backups: Path) -> None:
    got = run(collector(PathCheck(name="db", path=backups, pattern="*.sql.gz")))

    assert got.value("opswatch_path_scan_errors", name="db", path=str(backups)) == 1
    assert got.value("opswatch_path_files", name="db", path=str(backups)) == 2


def test_a_file_vanishing_mid_scan_is_skipped(
    run: Run, backups: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scandir = os.scandir

    class Vanishing:
        """Lists the folder, then deletes a dump before the collector stats it (rotation)."""

        def __init__(self, path: str) -> None:
            self.it = real_scandir(path)

        def __enter__(self) -> Iterator[os.DirEntry[str]]:
            entries = list(self.it)
            (backups / "db-2024-01-01.sql.gz").unlink(missing_ok=True)
            return iter(entries)

        def __exit__(self, *exc: object) -> None:
            self.it.close()

    monkeypatch.setattr(os, "scandir", Vanishing)
    got = run(collector(PathCheck(name="db", path=backups, pattern="*.sql.gz")))

    assert got.value("opswatch_path_files", name="db", path=str(backups)) == 2
    assert got.value("opswatch_path_scan_errors", name="db", path=str(backups)) == 0
