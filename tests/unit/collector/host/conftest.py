"""Fixtures of the host collector tests: recorded /proc and /sys trees, a fixed clock, lookups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.model import Sample
from collector.base import Collector

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_800_000_000.0


class Readings:
    """The samples of one collection, looked up the way a user reads /metrics."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def value(self, metric: str, /, **labels: str) -> float:
        """The value of the one series with this name and exactly these labels."""
        key = tuple(sorted(labels.items()))
        found = [s.value for s in self.samples if s.name == metric and s.labels == key]
        assert len(found) == 1, f"{metric}{labels}: {len(found)} samples"
        return found[0]

    def series(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Labels → value for every series of one metric."""
        return {s.labels: s.value for s in self.samples if s.name == name}

    def label_values(self, name: str, label: str) -> set[str]:
        """Every value one label takes across a metric's series."""
        return {s.label(label) for s in self.samples if s.name == name}

    @property
    def names(self) -> set[str]:
        return {s.name for s in self.samples}


@pytest.fixture
def proc() -> Path:
    return FIXTURES / "proc"


@pytest.fixture
def sysfs() -> Path:
    return FIXTURES / "sys"


@pytest.fixture
def now() -> float:
    return NOW


@pytest.fixture
def run() -> Callable[[Collector], Readings]:
    """Collect once at NOW, checking every sample is stamped NOW and of a described family."""

    def collect(collector: Collector) -> Readings:
        samples = collector.collect(NOW)
        described = {meta.name for meta in collector.describe()}
        assert {s.name for s in samples} <= described, "emitted a family describe() omits"
        assert all(s.timestamp == NOW for s in samples)
        return Readings(samples)

    return collect
