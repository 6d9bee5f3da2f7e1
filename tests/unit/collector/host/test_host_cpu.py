"""CPU seconds, load averages and boot time from recorded /proc files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent.config import CollectorSettings
from agent.errors import CollectorError
from agent.model import MetricType
from collector.base import Collector
from collector.host.cpu import BootCollector, CpuCollector, LoadavgCollector

if TYPE_CHECKING:
    from conftest import Readings

Run = Callable[[Collector], "Readings"]
SETTINGS = CollectorSettings()


def test_cpu_seconds_per_cpu_and_mode_in_seconds(run: Run, proc: Path) -> None:
    collector = CpuCollector(SETTINGS, proc=proc, ticks=100)
    got = run(collector)

    assert got.value("node_cpu_seconds_total", cpu="0", mode="user") == 14.95
    assert got.value("node_cpu_seconds_total", cpu="1", mode="idle") == 528.33
    assert got.value("node_cpu_seconds_total", cpu="1", mode="steal") == 0.05
    assert got.value("node_cpu_seconds_total", cpu="0", mode="iowait") == 1.10
    assert got.label_values("node_cpu_seconds_total", "cpu") == {"0", "1"}
    assert got.label_values("node_cpu_seconds_total", "mode") == {
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    }  # fmt: skip
    assert len(got.samples) == 16  # the aggregate "cpu" line is not a CPU
    assert collector.describe()[0].type is MetricType.COUNTER


def test_load_averages(run: Run, proc: Path) -> None:
    got = run(LoadavgCollector(SETTINGS, proc=proc))

    assert {s.name: s.value for s in got.samples} == {
        "node_load1": 0.42,
        "node_load5": 0.31,
        "node_load15": 0.27,
    }


def test_boot_time_from_btime(run: Run, proc: Path) -> None:
    collector = BootCollector(CollectorSettings(interval=300), proc=proc)

    assert run(collector).series("node_boot_time_seconds") == {(): 1795316523.0}
    assert collector.interval == 300.0


def test_missing_proc_file_raises_collector_error_naming_it(tmp_path: Path, now: float) -> None:
    with pytest.raises(CollectorError, match="loadavg"):
        LoadavgCollector(SETTINGS, proc=tmp_path).collect(now)


def test_stat_without_btime_raises(tmp_path: Path, now: float) -> None:
    (tmp_path / "stat").write_text("cpu  1 2 3 4 5 6 7 8 0 0\n")
    with pytest.raises(CollectorError, match="btime"):
        BootCollector(SETTINGS, proc=tmp_path).collect(now)
