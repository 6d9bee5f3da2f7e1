"""A third of the targets black-holed: the rest are polled on schedule, every cycle."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from integration.snmp.conftest import free_udp_port

from collector.snmp.poller import PollTarget, SnmpPoller
from collector.snmp.profiles import available_profiles

pytestmark = pytest.mark.integration
Snmpd = Any
PROFILES = available_profiles()
COLLECTOR_TIMEOUT = 4.0


@pytest.fixture
def silent_socket() -> Iterator[int]:
    """A bound UDP socket that reads nothing and answers nothing: a true black hole."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def targets(snmpd: Snmpd, silent_port: int) -> list[PollTarget]:
    profiles = (PROFILES["system"], PROFILES["if_mib"])
    good = [
        PollTarget(
            f"good{i}",
            "127.0.0.1",
            profiles,
            port=snmpd.port,
            community=snmpd.community,
            timeout=0.5,
            retries=1,
        )
        for i in range(6)
    ]
    dead = [
        PollTarget("hole-silent", "127.0.0.1", profiles, port=silent_port, community="x",
                   timeout=0.5, retries=1),
        PollTarget("hole-closed", "127.0.0.2", profiles, port=free_udp_port(), community="x",
                   timeout=0.5, retries=1),
        PollTarget("hole-wrong-community", "127.0.0.1", profiles, port=snmpd.port,
                   community="not-the-community", timeout=0.5, retries=1),
    ]  # fmt: skip
    return good[:3] + dead + good[3:]


def test_black_holes_delay_nobody(snmpd: Snmpd, silent_socket: int) -> None:
    poller = SnmpPoller(targets(snmpd, silent_socket), timeout=COLLECTOR_TIMEOUT, concurrency=4)

    async def three_cycles() -> list[tuple[float, dict[str, float], dict[str, float]]]:
        cycles = []
        for cycle in range(3):
            started = time.monotonic()
            samples = await poller.acollect(1000.0 + cycle)
            elapsed = time.monotonic() - started
            up = {s.label("target"): s.value for s in samples if s.name == "opswatch_snmp_up"}
            took = {
                s.label("target"): s.value
                for s in samples
                if s.name == "opswatch_snmp_poll_duration_seconds"
            }
            cycles.append((elapsed, up, took))
        poller.close()
        return cycles

    for elapsed, up, took in asyncio.run(asyncio.wait_for(three_cycles(), 60)):
        assert elapsed < COLLECTOR_TIMEOUT  # the scheduler never has to cancel the collector
        assert {t for t, v in up.items() if v == 1} == {f"good{i}" for i in range(6)}
        assert {t for t, v in up.items() if v == 0} == {
            "hole-silent",
            "hole-closed",
            "hole-wrong-community",
        }
        # each good target took its own time, not the black holes' 1.5 s of retries
        assert max(took[f"good{i}"] for i in range(6)) < 1.0
