"""Network interface counters from /proc/net/dev, named as node_exporter's netdev collector."""

from __future__ import annotations

import re
from pathlib import Path

from agent.config import NetdevSettings
from agent.errors import CollectorError
from agent.model import Sample, sample
from collector.base import SettingsCollector, counter, read_text

RECEIVE = ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")
TRANSMIT = ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed")
COLUMNS = tuple(f"node_network_receive_{c}_total" for c in RECEIVE) + tuple(
    f"node_network_transmit_{c}_total" for c in TRANSMIT
)
"""Metric name of each /proc/net/dev column after the interface name, in order."""


def parse_net_dev(text: str) -> dict[str, list[int]]:
    """Interface name → its 16 counters; the two header lines are skipped."""
    devices: dict[str, list[int]] = {}
    for line in text.splitlines()[2:]:
        # Old kernels glue the first counter to the colon ("eth0:12345"), so split on the colon.
        name, sep, rest = line.partition(":")
        values = rest.split()
        if not sep or len(values) != len(COLUMNS):
            raise CollectorError(f"invalid line in net/dev: {line!r}")
        devices[name.strip()] = [int(v) for v in values]
    return devices


class NetworkCollector(SettingsCollector):
    """Per-interface receive/transmit counters; interfaces matching `exclude` are skipped."""

    name = "netdev"
    families = tuple(
        counter(n, f"Network device statistic {n[len('node_network_') : -len('_total')]}.")
        for n in COLUMNS
    )

    def __init__(self, settings: NetdevSettings, proc: Path = Path("/proc")) -> None:
        super().__init__(settings)
        self._net_dev = proc / "net" / "dev"
        self._exclude = re.compile(settings.exclude)

    def collect(self, now: float) -> list[Sample]:
        """Sixteen counters per interface."""
        out: list[Sample] = []
        for device, values in parse_net_dev(read_text(self._net_dev)).items():
            if self._exclude.search(device):
                continue
            out.extend(
                sample(name, value, now, device=device)
                for name, value in zip(COLUMNS, values, strict=True)
            )
        return out
