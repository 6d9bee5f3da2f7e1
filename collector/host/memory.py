"""Memory and swap from /proc/meminfo, every field, named exactly as node_exporter's meminfo."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from agent.config import CollectorSettings
from agent.errors import CollectorError
from agent.model import MetricMeta, Sample, sample
from collector.base import SettingsCollector, gauge, read_text

_PARENS = re.compile(r"\((.*)\)")

# Fields of a 6.x kernel's /proc/meminfo (Documentation/filesystems/proc.rst), so `describe()`
# knows their families even if meminfo cannot be read at start-up.
KNOWN_FIELDS = (  # noqa: SIM905 - a word list reads better than 65 quoted strings
    "MemTotal MemFree MemAvailable Buffers Cached SwapCached Active Inactive Active(anon) "
    "Inactive(anon) Active(file) Inactive(file) Unevictable Mlocked HighTotal HighFree LowTotal "
    "LowFree MmapCopy SwapTotal SwapFree Zswap Zswapped Dirty Writeback AnonPages Mapped Shmem "
    "KReclaimable Slab SReclaimable SUnreclaim KernelStack ShadowCallStack PageTables "
    "SecPageTables NFS_Unstable Bounce WritebackTmp CommitLimit Committed_AS VmallocTotal "
    "VmallocUsed VmallocChunk Percpu HardwareCorrupted AnonHugePages ShmemHugePages "
    "ShmemPmdMapped FileHugePages FilePmdMapped CmaTotal CmaFree Unaccepted Balloon "
    "HugePages_Total HugePages_Free HugePages_Rsvd HugePages_Surp Hugepagesize Hugetlb "
    "DirectMap4k DirectMap2M DirectMap4M DirectMap1G"
).split()
# Fields the kernel prints without a unit: counts of huge pages, so no `_bytes` suffix.
UNITLESS_FIELDS = frozenset(
    {"HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"}
)


def metric_name(field: str, has_unit: bool) -> str:
    """`Active(anon)` with a kB unit → `node_memory_Active_anon_bytes` (node_exporter's rule)."""
    key = _PARENS.sub(r"_\1", field)
    return f"node_memory_{key}_bytes" if has_unit else f"node_memory_{key}"


def _meta(name: str) -> MetricMeta:
    return gauge(name, f"Memory information field {name.removeprefix('node_memory_')}.")


def parse_meminfo(text: str) -> dict[str, float]:
    """Metric name → value in bytes (kB fields times 1024) or pages (unitless fields)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue  # some kernels print blank lines
        if len(parts) not in (2, 3) or not parts[0].endswith(":"):
            raise CollectorError(f"invalid line in meminfo: {line!r}")
        has_unit = len(parts) == 3
        value = float(parts[1]) * (1024 if has_unit else 1)
        values[metric_name(parts[0][:-1], has_unit)] = value
    return values


class MemoryCollector(SettingsCollector):
    """Every `<proc>/meminfo` field as `node_memory_<Field>_bytes` (mem and swap)."""

    name = "memory"

    def __init__(self, settings: CollectorSettings, proc: Path = Path("/proc")) -> None:
        super().__init__(settings)
        self._meminfo = proc / "meminfo"
        known = [metric_name(f, f not in UNITLESS_FIELDS) for f in KNOWN_FIELDS]
        self._families: dict[str, MetricMeta] = {n: _meta(n) for n in known}
        self._learn(self._present_fields())

    def _present_fields(self) -> list[str]:
        # The agent reads describe() once at start-up: learn this kernel's fields now, so none
        # is exported untyped. Failing here is fine; collect() will raise and say why.
        try:
            return list(parse_meminfo(read_text(self._meminfo)))
        except CollectorError:
            return []

    def _learn(self, names: Iterable[str]) -> None:
        new = set(names) - self._families.keys()
        if new:
            # Swap in a new dict rather than mutate: describe() may run on another thread.
            self._families = {**self._families, **{n: _meta(n) for n in sorted(new)}}

    def describe(self) -> tuple[MetricMeta, ...]:
        """The known meminfo fields plus any other field this kernel has shown."""
        return tuple(self._families.values())

    def collect(self, now: float) -> list[Sample]:
        """One gauge per meminfo line."""
        values = parse_meminfo(read_text(self._meminfo))
        self._learn(values)
        return [sample(name, value, now) for name, value in values.items()]
