"""Block device I/O counters from /proc/diskstats, named and scaled as node_exporter's diskstats."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from agent.config import DeviceFilterSettings
from agent.model import MetricMeta, MetricType, Sample, sample
from collector.base import SettingsCollector, read_text

SECTOR_BYTES = 512
"""The kernel counts diskstats sectors in 512-byte units whatever the device's sector size."""


class DiskField(NamedTuple):
    """One /proc/diskstats column (0 = the first after the device name) and its metric."""

    column: int
    meta: MetricMeta
    scale: float


def _field(column: int, name: str, kind: MetricType, help_text: str, scale: float = 1) -> DiskField:
    return DiskField(column, MetricMeta(name, kind, help_text), scale)


C, G = MetricType.COUNTER, MetricType.GAUGE
MS = 0.001
FIELDS = (
    _field(0, "node_disk_reads_completed_total", C, "The total number of reads completed."),
    _field(1, "node_disk_reads_merged_total", C, "The total number of reads merged."),
    _field(2, "node_disk_read_bytes_total", C, "The total number of bytes read.", SECTOR_BYTES),
    _field(3, "node_disk_read_time_seconds_total", C, "Seconds spent by all reads.", MS),
    _field(4, "node_disk_writes_completed_total", C, "The total number of writes completed."),
    _field(5, "node_disk_writes_merged_total", C, "The number of writes merged."),
    _field(6, "node_disk_written_bytes_total", C, "The total bytes written.", SECTOR_BYTES),
    _field(7, "node_disk_write_time_seconds_total", C, "Seconds spent by all writes.", MS),
    _field(8, "node_disk_io_now", G, "The number of I/Os currently in progress."),
    _field(9, "node_disk_io_time_seconds_total", C, "Total seconds spent doing I/Os.", MS),
    _field(10, "node_disk_io_time_weighted_seconds_total", C, "Weighted seconds doing I/Os.", MS),
    _field(11, "node_disk_discards_completed_total", C, "The total number of discards completed."),
    _field(12, "node_disk_discards_merged_total", C, "The total number of discards merged."),
    _field(13, "node_disk_discarded_sectors_total", C, "The total number of sectors discarded."),
    _field(14, "node_disk_discard_time_seconds_total", C, "Seconds spent by all discards.", MS),
    _field(
        15, "node_disk_flush_requests_total", C, "The total number of flush requests completed."
    ),
    _field(16, "node_disk_flush_requests_time_seconds_total", C, "Seconds spent flushing.", MS),
)


class DiskCollector(SettingsCollector):
    """Per-device I/O counters from `<proc>/diskstats`; devices matching `exclude` are skipped."""

    name = "diskstats"
    families = tuple(f.meta for f in FIELDS)

    def __init__(self, settings: DeviceFilterSettings, proc: Path = Path("/proc")) -> None:
        super().__init__(settings)
        self._diskstats = proc / "diskstats"
        self._exclude = re.compile(settings.exclude)

    def collect(self, now: float) -> list[Sample]:
        """One sample per device and column the kernel provides (older kernels have fewer)."""
        out: list[Sample] = []
        for line in read_text(self._diskstats).splitlines():
            parts = line.split()
            if len(parts) < 4 or self._exclude.search(parts[2]):
                continue
            device, values = parts[2], parts[3:]
            for f in FIELDS[: len(values)]:
                value = int(values[f.column]) * f.scale
                out.append(sample(f.meta.name, value, now, device=device))
        return out
