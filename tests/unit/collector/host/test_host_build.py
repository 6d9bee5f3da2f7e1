"""build_host_collectors turns the `collectors:` section into one collector per enabled area."""

from __future__ import annotations

import math
import time
from pathlib import Path

from agent.config import CollectorsSection
from collector.base import Collector
from collector.host import build_host_collectors

ALL = ["cpu", "loadavg", "memory", "filesystem", "diskstats", "netdev", "boot", "hwmon",
       "processes", "paths"]  # fmt: skip


def test_defaults_build_every_collector_with_its_schedule() -> None:
    collectors = build_host_collectors(CollectorsSection())

    assert [c.name for c in collectors] == ALL
    assert all(isinstance(c, Collector) for c in collectors)
    schedule = {c.name: (c.interval, c.timeout) for c in collectors}
    assert schedule["cpu"] == (15.0, 10.0)
    assert schedule["boot"] == (300.0, 10.0)
    assert schedule["paths"] == (60.0, 30.0)


def test_disabled_collectors_are_not_built() -> None:
    section = CollectorsSection.model_validate(
        {"hwmon": {"enabled": False}, "paths": {"enabled": False}, "cpu": {"interval": "30s"}}
    )
    collectors = build_host_collectors(section)

    assert [c.name for c in collectors] == [n for n in ALL if n not in {"hwmon", "paths"}]
    assert next(c for c in collectors if c.name == "cpu").interval == 30.0


def test_roots_point_the_procfs_collectors_at_another_tree(sysfs: Path, proc: Path) -> None:
    collectors = {
        c.name: c for c in build_host_collectors(CollectorsSection(), proc=proc, sysfs=sysfs)
    }

    boot = collectors["boot"].collect(1.0)
    assert [s.value for s in boot] == [1795316523.0]
    assert collectors["hwmon"].collect(1.0)


def test_every_collector_runs_against_this_host() -> None:
    """Smoke test on the real host: shapes and sanity, not values."""
    section = CollectorsSection.model_validate(
        {
            "processes": {"watch": [{"name": "self", "cmdline": "pytest"}]},
            "paths": {"watch": [{"name": "here", "path": str(Path(__file__).parent)}]},
        }
    )
    now = time.time()
    results = {c.name: (c, c.collect(now)) for c in build_host_collectors(section)}

    for collector, samples in results.values():
        described = {m.name for m in collector.describe()}
        assert {s.name for s in samples} <= described, collector.name
        assert all(math.isfinite(s.value) and s.timestamp == now for s in samples)

    def values(collector: str, metric: str) -> list[float]:
        return [s.value for s in results[collector][1] if s.name == metric]

    assert 0 < values("boot", "node_boot_time_seconds")[0] <= now
    assert values("memory", "node_memory_MemTotal_bytes")[0] > 0
    assert len(values("loadavg", "node_load1")) == 1
    assert min(values("cpu", "node_cpu_seconds_total")) >= 0
    assert values("processes", "opswatch_process_up") == [1]
    assert values("paths", "opswatch_path_files")[0] >= 1
    assert all(v in (0, 1) for v in values("filesystem", "node_filesystem_device_error"))
