"""Interface counters from a recorded /proc/net/dev."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent.config import NetdevSettings
from agent.errors import CollectorError
from collector.base import Collector
from collector.host.network import NetworkCollector

if TYPE_CHECKING:
    from conftest import Readings

Run = Callable[[Collector], "Readings"]


def test_receive_and_transmit_counters_per_device(run: Run, proc: Path) -> None:
    got = run(NetworkCollector(NetdevSettings(), proc=proc))

    def eth0(name: str) -> float:
        return got.value(f"node_network_{name}_total", device="eth0")

    assert eth0("receive_bytes") == 98427316584  # beyond 32 bits: no wrap
    assert eth0("receive_packets") == 71564223
    assert eth0("receive_errs") == 3
    assert eth0("receive_drop") == 17
    assert eth0("receive_frame") == 2
    assert eth0("receive_multicast") == 120451
    assert eth0("transmit_bytes") == 12503387641
    assert eth0("transmit_packets") == 40211877
    assert eth0("transmit_errs") == 0
    assert eth0("transmit_drop") == 1
    assert got.value("node_network_transmit_drop_total", device="docker0") == 5
    assert len(got.samples) == 3 * 16


def test_exclude_regex_from_settings(run: Run, proc: Path) -> None:
    got = run(NetworkCollector(NetdevSettings(exclude=r"^(lo|docker\d+)$"), proc=proc))

    assert got.label_values("node_network_receive_bytes_total", "device") == {"eth0"}


def test_old_kernel_format_without_space_after_colon(run: Run, proc: Path, tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    header = (proc / "net" / "dev").read_text().splitlines()[:2]
    line = "  eth0:12345 10 0 0 0 0 0 0 678 9 0 0 0 0 0 0"
    (tmp_path / "net" / "dev").write_text("\n".join([*header, line]) + "\n")

    got = run(NetworkCollector(NetdevSettings(), proc=tmp_path))

    assert got.value("node_network_receive_bytes_total", device="eth0") == 12345
    assert got.value("node_network_transmit_bytes_total", device="eth0") == 678


def test_truncated_line_raises(tmp_path: Path, now: float) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "dev").write_text("h1\nh2\n  eth0: 1 2 3\n")
    with pytest.raises(CollectorError, match="eth0"):
        NetworkCollector(NetdevSettings(), proc=tmp_path).collect(now)
