"""Block device counters from a recorded /proc/diskstats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent.config import DeviceFilterSettings
from collector.base import Collector
from collector.host.disk import DiskCollector

if TYPE_CHECKING:
    from conftest import Readings

Run = Callable[[Collector], "Readings"]
SECTOR = 512


def test_whole_disks_kept_partitions_and_loops_excluded_by_default(run: Run, proc: Path) -> None:
    got = run(DiskCollector(DeviceFilterSettings(), proc=proc))

    assert got.label_values("node_disk_reads_completed_total", "device") == {
        "sda",
        "nvme0n1",
        "dm-0",
    }


def test_counters_in_base_units(run: Run, proc: Path) -> None:
    got = run(DiskCollector(DeviceFilterSettings(), proc=proc))

    def sda(name: str) -> float:
        return got.value(name, device="sda")

    assert sda("node_disk_reads_completed_total") == 1149876
    assert sda("node_disk_writes_completed_total") == 3326417
    assert sda("node_disk_read_bytes_total") == 58632418 * SECTOR
    assert sda("node_disk_written_bytes_total") == 201733296 * SECTOR
    assert sda("node_disk_read_time_seconds_total") == pytest.approx(482.210)
    assert sda("node_disk_write_time_seconds_total") == pytest.approx(5921.430)
    assert sda("node_disk_io_time_seconds_total") == pytest.approx(2873.924)
    assert sda("node_disk_flush_requests_total") == 316411
    assert got.value("node_disk_io_now", device="nvme0n1") == 2


def test_older_kernel_lines_emit_only_the_columns_they_have(run: Run, proc: Path) -> None:
    got = run(DiskCollector(DeviceFilterSettings(), proc=proc))
    dm0 = {s.name for s in got.samples if s.label("device") == "dm-0"}

    assert "node_disk_io_time_weighted_seconds_total" in dm0
    assert "node_disk_discards_completed_total" not in dm0
    assert "node_disk_flush_requests_total" not in dm0
    assert got.value("node_disk_written_bytes_total", device="dm-0") == 1854608 * SECTOR


def test_exclude_regex_from_settings(run: Run, proc: Path) -> None:
    got = run(DiskCollector(DeviceFilterSettings(exclude="^(loop|dm-)"), proc=proc))

    assert got.label_values("node_disk_io_now", "device") == {
        "sda",
        "sda1",
        "nvme0n1",
        "nvme0n1p1",
    }
