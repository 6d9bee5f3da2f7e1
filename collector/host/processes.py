"""Watched processes: up, count, oldest start time and restarts observed between collections.

A check matches a process when every matcher it sets agrees: `comm` (exact process name),
`cmdline` (regex searched in the space-joined argv) and `user`. A restart is counted when a
collection finds matching processes and some of the last matching set seen have vanished while
new ones appeared; processes are identified by (pid, start time) so a reused PID is a new process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil

from agent.config import ProcessCheck, ProcessSettings
from agent.model import Sample
from collector.base import SettingsCollector, counter, gauge, labelled

_ATTRS = ["pid", "name", "cmdline", "username", "create_time", "status"]


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """What a check looks at in one process."""

    pid: int
    name: str
    cmdline: tuple[str, ...]
    username: str | None
    create_time: float | None

    @property
    def identity(self) -> tuple[int, float | None]:
        """PID and start time: a PID the kernel reuses is a different process."""
        return (self.pid, self.create_time)


ProcessSource = Callable[[], Iterable[ProcInfo]]


def psutil_processes() -> list[ProcInfo]:
    """Every live process of the host; zombies are left out (they are no longer running)."""
    out = []
    # process_iter skips processes that vanish mid-iteration; attributes we may not read
    # (AccessDenied, e.g. another user's cmdline on a hardened kernel) come back as None.
    for proc in psutil.process_iter(_ATTRS, ad_value=None):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        out.append(
            ProcInfo(
                pid=info["pid"],
                name=info["name"] or "",
                cmdline=tuple(info["cmdline"] or ()),
                username=info["username"],
                create_time=info["create_time"],
            )
        )
    return out


class _Matcher:
    def __init__(self, check: ProcessCheck) -> None:
        self.check = check
        self._cmdline = re.compile(check.cmdline) if check.cmdline else None

    def __call__(self, proc: ProcInfo) -> bool:
        check = self.check
        if check.comm and proc.name != check.comm:
            return False
        if check.user and proc.username != check.user:
            return False
        return not self._cmdline or bool(self._cmdline.search(" ".join(proc.cmdline)))


class ProcessCollector(SettingsCollector):
    """`opswatch_process_*{name}` for each configured process check."""

    name = "processes"
    families = (
        gauge("opswatch_process_up", "1 if at least one process matches the check."),
        gauge("opswatch_process_count", "Number of processes matching the check."),
        counter(
            "opswatch_process_restarts_total",
            "Restarts seen between collections: matching processes vanished, new ones appeared.",
        ),
        gauge(
            "opswatch_process_start_time_seconds",
            "Start time of the oldest matching process (Unix time).",
        ),
    )

    def __init__(
        self, settings: ProcessSettings, processes: ProcessSource = psutil_processes
    ) -> None:
        super().__init__(settings)
        self._matchers = [_Matcher(check) for check in settings.watch]
        self._source = processes
        self._last_seen: dict[str, frozenset[tuple[int, float | None]]] = {}
        self._restarts: dict[str, int] = {m.check.name: 0 for m in self._matchers}

    def collect(self, now: float) -> list[Sample]:
        """Four samples per check (three when nothing matches: no start time)."""
        procs = list(self._source()) if self._matchers else []
        out: list[Sample] = []
        for matcher in self._matchers:
            matching = [p for p in procs if matcher(p)]
            out.extend(self._check_samples(matcher.check.name, matching, now))
        return out

    def _check_samples(self, name: str, matching: list[ProcInfo], now: float) -> list[Sample]:
        self._observe(name, frozenset(p.identity for p in matching))
        values: dict[str, float] = {
            "opswatch_process_up": 1 if matching else 0,
            "opswatch_process_count": len(matching),
            "opswatch_process_restarts_total": self._restarts[name],
        }
        starts = [p.create_time for p in matching if p.create_time is not None]
        if starts:
            values["opswatch_process_start_time_seconds"] = min(starts)
        labels = {"name": name}
        return [labelled(metric, value, now, labels) for metric, value in values.items()]

    def _observe(self, name: str, current: frozenset[tuple[int, float | None]]) -> None:
        if not current:
            return  # keep the last set seen, so down-then-up counts as one restart
        previous = self._last_seen.get(name)
        if previous is not None and previous - current and current - previous:
            self._restarts[name] += 1
        self._last_seen[name] = current
