"""Host collectors: CPU, load, memory, filesystems, disks, network, boot, hwmon, processes, paths.

`build_host_collectors` is the one place that turns the `collectors:` section of agent.yaml into
collector objects; a collector whose settings say `enabled: false` is not built.
"""

from __future__ import annotations

from pathlib import Path

from agent.config import CollectorsSection
from collector.base import Collector
from collector.host.cpu import BootCollector, CpuCollector, LoadavgCollector
from collector.host.disk import DiskCollector
from collector.host.filesystem import FilesystemCollector
from collector.host.hwmon import HwmonCollector
from collector.host.memory import MemoryCollector
from collector.host.network import NetworkCollector
from collector.host.paths import PathCollector
from collector.host.processes import ProcessCollector

__all__ = [
    "BootCollector",
    "CpuCollector",
    "DiskCollector",
    "FilesystemCollector",
    "HwmonCollector",
    "LoadavgCollector",
    "MemoryCollector",
    "NetworkCollector",
    "PathCollector",
    "ProcessCollector",
    "build_host_collectors",
]


def build_host_collectors(
    config: CollectorsSection, *, proc: Path = Path("/proc"), sysfs: Path = Path("/sys")
) -> list[Collector]:
    """One collector per enabled area; `proc`/`sysfs` point elsewhere for containers or tests."""
    candidates: list[tuple[bool, Collector]] = [
        (config.cpu.enabled, CpuCollector(config.cpu, proc=proc)),
        (config.loadavg.enabled, LoadavgCollector(config.loadavg, proc=proc)),
        (config.memory.enabled, MemoryCollector(config.memory, proc=proc)),
        (config.filesystem.enabled, FilesystemCollector(config.filesystem, proc=proc)),
        (config.diskstats.enabled, DiskCollector(config.diskstats, proc=proc)),
        (config.netdev.enabled, NetworkCollector(config.netdev, proc=proc)),
        (config.boot.enabled, BootCollector(config.boot, proc=proc)),
        (config.hwmon.enabled, HwmonCollector(config.hwmon, sysfs=sysfs)),
        (config.processes.enabled, ProcessCollector(config.processes)),
        (config.paths.enabled, PathCollector(config.paths)),
    ]
    return [collector for enabled, collector in candidates if enabled]
