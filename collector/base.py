"""The collector protocol every source of samples implements (host now, SNMP later).

A collector is a small object with `describe()` and `collect(now)`. Its data sources (a /proc
root, a sysfs root, a psutil-like process source) come in through the constructor, so a test
points it at a fixture tree. `collect` may block and may raise: the scheduler runs it in a worker
thread under `timeout` and turns an exception into `opswatch_collector_up{collector} 0`.
`describe` returns an immutable tuple, which also satisfies agent.scheduler's own protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from agent.config import CollectorSettings
from agent.errors import CollectorError
from agent.model import MetricMeta, MetricType, Sample, make_labels


@runtime_checkable
class Collector(Protocol):
    """What the scheduler runs: a named source of samples with its own interval and timeout."""

    name: str
    interval: float
    timeout: float

    def describe(self) -> tuple[MetricMeta, ...]:
        """Type and help of every metric family `collect` may emit."""
        ...

    def collect(self, now: float) -> list[Sample]:
        """Read the source once; `now` stamps every sample."""
        ...


class SettingsCollector:
    """Shared plumbing: name, interval and timeout from the settings, a fixed family table."""

    name: str = ""
    families: tuple[MetricMeta, ...] = ()

    def __init__(self, settings: CollectorSettings) -> None:
        self.interval = settings.interval
        self.timeout = settings.timeout

    def describe(self) -> tuple[MetricMeta, ...]:
        """Type and help of every metric family `collect` may emit."""
        return self.families


def gauge(name: str, help_text: str) -> MetricMeta:
    """Shorthand for a gauge family description."""
    return MetricMeta(name, MetricType.GAUGE, help_text)


def counter(name: str, help_text: str) -> MetricMeta:
    """Shorthand for a counter family description (name ends in `_total`)."""
    return MetricMeta(name, MetricType.COUNTER, help_text)


def read_text(path: Path) -> str:
    """Read a small kernel file, translating OSError into CollectorError with the path."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CollectorError(f"cannot read {path}: {exc.strerror or exc}") from exc


def labelled(name: str, value: float, now: float, labels: Mapping[str, str]) -> Sample:
    """A sample from a label mapping (for label names like `name` that clash with keywords)."""
    return Sample(name, make_labels(labels), float(value), now)
