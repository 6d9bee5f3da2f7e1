"""CPU time per mode and load averages, read from /proc like node_exporter's cpu and loadavg."""

from __future__ import annotations

import os
from pathlib import Path

from agent.config import CollectorSettings
from agent.errors import CollectorError
from agent.model import Sample, sample
from collector.base import SettingsCollector, counter, gauge, read_text

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
"""Columns of a /proc/stat `cpuN` line, in order (guest time is already inside user/nice)."""


def clock_ticks() -> int:
    """USER_HZ: the unit of /proc/stat times (100 on every mainstream Linux build)."""
    return os.sysconf("SC_CLK_TCK")


class CpuCollector(SettingsCollector):
    """`node_cpu_seconds_total{cpu,mode}` from `<proc>/stat`."""

    name = "cpu"
    families = (counter("node_cpu_seconds_total", "Seconds the CPUs spent in each mode."),)

    def __init__(
        self, settings: CollectorSettings, proc: Path = Path("/proc"), ticks: int | None = None
    ) -> None:
        super().__init__(settings)
        self._stat = proc / "stat"
        self._ticks = ticks or clock_ticks()

    def collect(self, now: float) -> list[Sample]:
        """One sample per CPU and mode."""
        out: list[Sample] = []
        for line in read_text(self._stat).splitlines():
            fields = line.split()
            # The aggregate line is "cpu"; per-CPU lines are "cpu0", "cpu1", ...
            if not fields or not fields[0].startswith("cpu") or fields[0] == "cpu":
                continue
            cpu = fields[0][3:]
            for mode, value in zip(CPU_MODES, fields[1:], strict=False):
                seconds = int(value) / self._ticks
                out.append(sample("node_cpu_seconds_total", seconds, now, cpu=cpu, mode=mode))
        return out


class LoadavgCollector(SettingsCollector):
    """`node_load1`, `node_load5`, `node_load15` from `<proc>/loadavg`."""

    name = "loadavg"
    families = (
        gauge("node_load1", "1m load average."),
        gauge("node_load5", "5m load average."),
        gauge("node_load15", "15m load average."),
    )

    def __init__(self, settings: CollectorSettings, proc: Path = Path("/proc")) -> None:
        super().__init__(settings)
        self._loadavg = proc / "loadavg"

    def collect(self, now: float) -> list[Sample]:
        """Three samples: the 1, 5 and 15 minute load averages."""
        fields = read_text(self._loadavg).split()
        if len(fields) < 3:
            raise CollectorError(f"unexpected content in {self._loadavg}: {fields!r}")
        return [
            sample(meta.name, float(value), now)
            for meta, value in zip(self.families, fields[:3], strict=True)
        ]


class BootCollector(SettingsCollector):
    """`node_boot_time_seconds` from the `btime` line of `<proc>/stat`."""

    name = "boot"
    families = (gauge("node_boot_time_seconds", "Node boot time, in unixtime."),)

    def __init__(self, settings: CollectorSettings, proc: Path = Path("/proc")) -> None:
        super().__init__(settings)
        self._stat = proc / "stat"

    def collect(self, now: float) -> list[Sample]:
        """One sample: when the kernel booted (Unix time)."""
        for line in read_text(self._stat).splitlines():
            if line.startswith("btime "):
                return [sample("node_boot_time_seconds", float(line.split()[1]), now)]
        raise CollectorError(f"no btime line in {self._stat}")
