"""Watched files and directories: existence, size, file count and the age of the newest file.

The newest-file age is what backup-freshness and stuck-spool checks alert on. Directories are
walked iteratively with os.scandir (no recursion limit), symlinks inside them are never followed,
and a file that vanishes mid-scan or cannot be read is skipped, never raised. File names found
during a scan are untrusted text and never become labels: only the configured name and path do.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from fnmatch import fnmatchcase

from agent.config import PathCheck, PathSettings
from agent.model import Sample
from collector.base import SettingsCollector, gauge, labelled

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ScanResult:
    """What one check found; `newest`/`oldest` are mtimes, None when no file matched."""

    exists: bool | None = True
    """None when the path itself could not be statted (e.g. permission denied)."""
    files: int = 0
    size: int = 0
    newest: float | None = None
    oldest: float | None = None
    errors: int = 0
    truncated: bool = False

    def add_file(self, st: os.stat_result) -> None:
        """Count one matching regular file."""
        self.files += 1
        self.size += st.st_size
        self.newest = st.st_mtime if self.newest is None else max(self.newest, st.st_mtime)
        self.oldest = st.st_mtime if self.oldest is None else min(self.oldest, st.st_mtime)


def scan(check: PathCheck) -> ScanResult:
    """Stat a file, or walk a directory counting regular files whose name matches the pattern."""
    result = ScanResult()
    try:
        # The configured path is trusted, so a symlink there (e.g. /backups → /mnt/nas) is followed.
        st = os.stat(check.path)
    except (FileNotFoundError, NotADirectoryError):
        result.exists = False
        return result
    except OSError as exc:
        log.warning("cannot stat watched path: %s", exc.strerror, extra={"check": check.name})
        result.exists, result.errors = None, 1
        return result
    if stat.S_ISDIR(st.st_mode):
        _walk(check, result)
    elif stat.S_ISREG(st.st_mode):
        result.add_file(st)
    return result


def _walk(check: PathCheck, result: ScanResult) -> None:
    pending = [os.fspath(check.path)]
    seen = 0
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    seen += 1
                    if seen > check.max_entries:
                        result.truncated = True
                        return
                    _visit(entry, check, result, pending)
        except FileNotFoundError:
            pass  # a subdirectory removed while we walked: nothing left to count
        except OSError:
            result.errors += 1


def _visit(
    entry: os.DirEntry[str], check: PathCheck, result: ScanResult, pending: list[str]
) -> None:
    try:
        if entry.is_dir(follow_symlinks=False):
            if check.recursive:
                pending.append(entry.path)
        elif entry.is_file(follow_symlinks=False) and fnmatchcase(entry.name, check.pattern):
            result.add_file(entry.stat(follow_symlinks=False))
    except FileNotFoundError:
        pass  # vanished between listing and stat (rotation, cleanup): not an error
    except OSError:
        result.errors += 1


def _samples(check: PathCheck, result: ScanResult, now: float) -> list[Sample]:
    labels = {"name": check.name, "path": str(check.path)}
    if result.exists is None:
        # The path itself could not be statted: whether it exists is unknown, so only say that.
        return [labelled("opswatch_path_scan_errors", result.errors, now, labels)]
    if not result.exists:
        return [labelled("opswatch_path_exists", 0, now, labels)]
    values: dict[str, float] = {
        "opswatch_path_exists": 1,
        "opswatch_path_size_bytes": result.size,
        "opswatch_path_files": result.files,
        "opswatch_path_scan_truncated": 1 if result.truncated else 0,
        "opswatch_path_scan_errors": result.errors,
    }
    if result.newest is not None and result.oldest is not None:
        values["opswatch_path_newest_age_seconds"] = now - result.newest
        values["opswatch_path_oldest_age_seconds"] = now - result.oldest
    return [labelled(metric, value, now, labels) for metric, value in values.items()]


class PathCollector(SettingsCollector):
    """`opswatch_path_*{name,path}` for each configured path check."""

    name = "paths"
    families = (
        gauge("opswatch_path_exists", "1 if the watched path exists, 0 if it does not."),
        gauge("opswatch_path_size_bytes", "Size of the file, or total size of matching files."),
        gauge("opswatch_path_files", "Number of matching regular files."),
        gauge(
            "opswatch_path_newest_age_seconds",
            "Seconds since the newest matching file was modified.",
        ),
        gauge(
            "opswatch_path_oldest_age_seconds",
            "Seconds since the oldest matching file was modified.",
        ),
        gauge("opswatch_path_scan_truncated", "1 if the scan stopped at max_entries."),
        gauge(
            "opswatch_path_scan_errors",
            "Entries that could not be read in the last scan (permission denied, I/O error).",
        ),
    )

    def __init__(self, settings: PathSettings) -> None:
        super().__init__(settings)
        self._checks = list(settings.watch)

    def collect(self, now: float) -> list[Sample]:
        """Scan every check; `now` is the reference for ages."""
        out: list[Sample] = []
        for check in self._checks:
            out.extend(_samples(check, scan(check), now))
        return out
