"""The poller without a network: targets answer from canned varbinds, fail, or never answer."""

from __future__ import annotations

import asyncio
import time

from agent.model import Sample
from collector.snmp.errors import SnmpAuthError
from collector.snmp.model import Oid, Tag, VarBind
from collector.snmp.poller import PollTarget, SnmpPoller
from collector.snmp.profiles import available_profiles

PROFILES = available_profiles()
UPTIME = Oid.parse("1.3.6.1.2.1.1.3.0")
HC_IN = Oid.parse("1.3.6.1.2.1.31.1.1.1.6.1")
SPEED = Oid.parse("1.3.6.1.2.1.31.1.1.1.15.1")


class FakePoller(SnmpPoller):
    """Answers per target name from `devices`; 'hang' never answers, 'auth' is rejected."""

    def __init__(self, targets: list[PollTarget], **kw: float) -> None:
        super().__init__(targets, **kw)  # type: ignore[arg-type]
        self.devices: dict[str, list[VarBind]] = {}

    async def open(self) -> None:
        """No socket: unit tests stay off the network."""

    async def _fetch(self, target: PollTarget) -> tuple[list[VarBind], float]:
        if target.name.startswith("hang"):
            await asyncio.sleep(3600)
        if target.name.startswith("auth"):
            raise SnmpAuthError("10.0.0.3:161 user 'ow': wrong auth key")
        return self.devices[target.name], 0.004


def target(name: str, **labels: str) -> PollTarget:
    profiles = (PROFILES["system"], PROFILES["if_mib"])
    return PollTarget(name, "10.0.0.1", profiles, labels, community="never-shown")


def device(uptime: int, octets: int) -> list[VarBind]:
    return [
        VarBind(UPTIME, Tag.TIMETICKS, uptime),
        VarBind(HC_IN, Tag.COUNTER64, octets),
        VarBind(SPEED, Tag.GAUGE32, 1000),
    ]


def value(samples: list[Sample], name: str, target: str) -> float | None:
    hits = [s.value for s in samples if s.name == name and s.label("target") == target]
    return hits[0] if hits else None


def test_hung_and_rejected_targets_are_reported_and_delay_nobody() -> None:
    targets = [target("ok1", criticality="high"), target("hang1"), target("auth1"), target("ok2")]
    poller = FakePoller(targets, timeout=0.5)
    poller.devices = {"ok1": device(100, 0), "ok2": device(100, 0)}
    started = time.monotonic()
    samples = asyncio.run(poller.acollect(1000.0))
    assert time.monotonic() - started < 5  # the hung target's own deadline, not an hour
    assert value(samples, "opswatch_snmp_up", "ok1") == 1
    assert value(samples, "opswatch_snmp_up", "ok2") == 1
    assert value(samples, "opswatch_snmp_up", "hang1") == 0
    assert value(samples, "opswatch_snmp_up", "auth1") == 0
    errors = {s.label("target"): s.label("error") for s in samples if s.name.endswith("last_error")}
    assert errors["auth1"] == "auth: 10.0.0.3:161 user 'ow': wrong auth key"
    assert errors["hang1"].startswith("deadline")
    assert value(samples, "sysUpTime", "ok1") == 100
    ok1 = [s for s in samples if s.name == "ifHCInOctets" and s.label("target") == "ok1"]
    assert ok1[0].label("criticality") == "high"
    assert all("never-shown" not in str(s) for s in samples)


def test_rates_across_polls_and_no_spike_after_reboot() -> None:
    poller = FakePoller([target("sw")], timeout=5)
    poller.devices["sw"] = device(10_000, 0)
    asyncio.run(poller.acollect(0.0))
    poller.devices["sw"] = device(16_000, 600_000_000)
    second = asyncio.run(poller.acollect(60.0))
    assert value(second, "opswatch_if_in_bytes_per_second", "sw") == 10_000_000
    assert value(second, "opswatch_if_in_utilization_ratio", "sw") == 0.08
    poller.devices["sw"] = device(500, 1000)  # rebooted: uptime and counters restarted
    third = asyncio.run(poller.acollect(120.0))
    assert value(third, "opswatch_if_in_bytes_per_second", "sw") is None
    assert value(third, "opswatch_snmp_device_reboots_total", "sw") == 1
    poller.devices["sw"] = device(6500, 1000 + 60 * 125_000)
    fourth = asyncio.run(poller.acollect(180.0))
    assert value(fourth, "opswatch_if_in_bytes_per_second", "sw") == 125_000


def test_recovery_clears_last_error_and_availability_counts_both() -> None:
    poller = FakePoller([target("auth-then-ok")], timeout=5)
    first = asyncio.run(poller.acollect(0.0))
    assert value(first, "opswatch_snmp_last_error", "auth-then-ok") == 1
    poller.targets = (target("ok"),)
    poller._health["ok"] = poller._health.pop("auth-then-ok")
    poller.devices["ok"] = device(1, 1)
    second = asyncio.run(poller.acollect(60.0))
    assert value(second, "opswatch_snmp_last_error", "ok") == 0
    assert value(second, "opswatch_snmp_up", "ok") == 1


def test_describe_lists_profile_and_health_families() -> None:
    names = {m.name for m in FakePoller([target("a")]).describe()}
    assert {"ifHCInOctets", "sysUpTime", "ifType_info", "opswatch_snmp_up"} <= names
    assert "opswatch_if_in_utilization_ratio" in names
