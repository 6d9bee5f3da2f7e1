"""The SNMP poller in a child process: polls real snmpd, streams its page, survives its child.

Every child is started by `PollerProcess` and stopped by its pid (`aclose`); each test checks
that the pid is gone at the end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from integration.snmp.conftest import V3_USERS, Snmpd, free_udp_port

from collector.snmp.errors import SnmpError
from collector.snmp.poller import PollTarget, SnmpPoller
from collector.snmp.process import CHILD, PollerProcess
from collector.snmp.profiles import available_profiles
from collector.snmp.v3model import UsmUser, V3Target

pytestmark = pytest.mark.integration
PROFILES = available_profiles()
T = TypeVar("T")


def process_for(snmpd: Snmpd, *, dead: bool = False, timeout: float = 8.0) -> PollerProcess:
    profiles = (PROFILES["system"], PROFILES["if_mib"])
    targets = [PollTarget("lab", "127.0.0.1", profiles, port=snmpd.port,
                          community=snmpd.community, timeout=1.0, retries=0)]  # fmt: skip
    if dead:
        targets.append(PollTarget("dead", "127.0.0.1", profiles, port=free_udp_port(),
                                  community=snmpd.community, timeout=0.3, retries=0))  # fmt: skip
    poller = SnmpPoller(targets, timeout=timeout)
    poller.pre_render({"ifOperStatus", "sysUpTime"}, pages=True)
    return PollerProcess(poller)


def run(body: Callable[[PollerProcess], Awaitable[T]], proc: PollerProcess) -> T:
    """Run `body(proc)` on a fresh loop; the child is always stopped and reaped by pid."""
    pids: list[int] = []

    async def main() -> T:
        try:
            return await asyncio.wait_for(body(proc), 60)
        finally:
            if proc.pid is not None:
                pids.append(proc.pid)
            await proc.aclose()

    try:
        return asyncio.run(main())
    finally:
        for pid in pids:
            assert not _alive(pid), f"child {pid} outlived its test"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def page_text(proc: PollerProcess) -> str:
    return b"".join([piece async for piece in proc.page()]).decode()


def value(samples: list[Any], name: str, target: str) -> float:
    [found] = [s.value for s in samples if s.name == name and s.label("target") == target]
    return float(found)


def test_the_child_polls_snmpd_and_writes_its_page(snmpd: Snmpd) -> None:
    async def body(proc: PollerProcess) -> tuple[list[Any], str, list[Any]]:
        samples = await proc.acollect(1e9)
        return samples, await page_text(proc), proc.rule_samples

    samples, page, rules = run(body, process_for(snmpd))
    assert value(samples, "opswatch_snmp_up", "lab") == 1
    # the polled series are on the child's page, in snmp_exporter's names, not in the samples
    assert "# TYPE ifHCInOctets untyped" in page
    # snmpd shows the host's own interfaces: lo is always there, and up
    assert 'ifOperStatus{ifDescr="lo",ifIndex="1",ifName="lo",target="lab"} 1.0' in page
    assert not [s for s in samples if s.name == "ifHCInOctets"]
    # what rules read comes back as samples, with the values the page shows
    assert {s.name for s in rules} == {"ifOperStatus", "sysUpTime"}
    assert page.count("# HELP ifOperStatus ") == 1 and page.endswith("\n")


def test_a_dead_target_is_down_and_its_failure_is_logged_by_the_agent(
    snmpd: Snmpd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    async def body(proc: PollerProcess) -> tuple[list[Any], str]:
        return await proc.acollect(1e9), await page_text(proc)

    samples, page = run(body, process_for(snmpd, dead=True))
    assert value(samples, "opswatch_snmp_up", "dead") == 0
    assert value(samples, "opswatch_snmp_up", "lab") == 1
    assert 'target="dead"' not in page and 'target="lab"' in page
    [failed] = [r for r in caplog.records if r.getMessage().startswith("SNMP poll failed")]
    assert failed.name == "collector.snmp.poller" and getattr(failed, "target", "") == "dead"
    assert snmpd.community not in caplog.text


def test_a_killed_child_is_started_again_and_polls(snmpd: Snmpd) -> None:
    async def body(proc: PollerProcess) -> tuple[int, int | None, str, list[Any]]:
        await proc.acollect(1e9)
        first = proc.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        for _ in range(100):  # the agent sees its stdout end
            if proc.pid is None:
                break
            await asyncio.sleep(0.05)
        empty = await page_text(proc)  # nothing to serve while it is gone
        samples = await proc.acollect(1e9 + 30)
        assert proc.pid != first and not _alive(first)
        return proc.restarts, proc.pid, empty, samples

    restarts, pid, empty, samples = run(body, process_for(snmpd))
    assert restarts == 1 and pid is not None and empty == ""
    assert value(samples, "opswatch_snmp_up", "lab") == 1
    [count] = [s.value for s in samples if s.name == "opswatch_snmp_poller_restarts_total"]
    assert count == 1


def test_a_hung_child_fails_its_rounds_then_is_replaced(snmpd: Snmpd) -> None:
    async def body(proc: PollerProcess) -> tuple[list[str], list[Any]]:
        await proc.acollect(1e9)
        hung = proc.pid
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)  # alive, answering nothing
        errors = []
        for n in range(2):
            with pytest.raises(SnmpError) as failed:
                await proc.acollect(1e9 + 30 * (n + 1))
            errors.append(str(failed.value))
        samples = await proc.acollect(1e9 + 90)  # the hung one killed, a new one answers
        assert not _alive(hung) and proc.pid != hung
        return errors, samples

    errors, samples = run(body, process_for(snmpd, timeout=2.0))
    assert all("no answer within 2s" in e for e in errors)
    assert value(samples, "opswatch_snmp_up", "lab") == 1


def test_a_scraper_that_stops_reading_holds_up_no_other_scrape_and_no_round(
    snmpd: Snmpd,
) -> None:
    async def body(proc: PollerProcess) -> tuple[str, list[Any], str]:
        await proc.acollect(1e9)
        stalled = proc.page()
        first = (await anext(stalled)).decode()  # then it reads no more, as a stuck client
        try:
            samples = await asyncio.wait_for(proc.acollect(1e9 + 30), 10)
            other = await asyncio.wait_for(page_text(proc), 10)
        finally:
            await stalled.aclose()
        return first, samples, other

    first, samples, other = run(body, process_for(snmpd))
    assert first.startswith("# HELP ")
    assert value(samples, "opswatch_snmp_up", "lab") == 1
    assert 'target="lab"' in other and other.endswith("\n")


def test_a_page_the_child_stops_sending_fails_the_scrape(
    snmpd: Snmpd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cut page must not end like a whole one: Prometheus would take it and lose series."""
    monkeypatch.setattr("collector.snmp.process._PAGE_STALL", 1.0)

    async def body(proc: PollerProcess) -> list[str]:
        await proc.acollect(1e9)
        pid = proc.pid
        assert pid is not None
        errors = []
        os.kill(pid, signal.SIGSTOP)  # stalled: no piece comes
        with pytest.raises(SnmpError) as stalled:
            await page_text(proc)
        errors.append(str(stalled.value))
        pages = proc.page()
        waiting = asyncio.ensure_future(anext(pages))
        await asyncio.sleep(0.2)  # the request is in the pipe; the child dies before answering
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(SnmpError) as died:
            await waiting
        errors.append(str(died.value))
        await pages.aclose()
        return errors

    errors = run(body, process_for(snmpd))
    assert errors == [
        "SNMP poller page: no piece for 1s",
        "SNMP poller process exited in the middle of a page",
    ]


def test_the_child_loads_no_config_server_or_tls_libraries() -> None:
    """What keeps the child small: nothing of the agent's but the poller (bench/snmp_poll.py)."""
    code = CHILD.replace("main()", "print(' '.join(sorted(sys.modules)))")
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert "collector.snmp.poller" in loaded
    heavy = ("pydantic", "sqlalchemy", "yaml", "prometheus_client", "starlette", "uvicorn",
             "_ssl", "_hashlib", "pysnmp", "agent.config")  # fmt: skip
    assert not [m for m in loaded if m.split(".")[0] in heavy or m in heavy]


def test_a_wrong_v3_key_is_named_through_the_child_and_no_key_leaks(
    snmpd: Snmpd, caplog: pytest.LogCaptureFixture
) -> None:
    """The child's v3 path asks pysnmp again to say why, as the agent's own poller does."""
    user = V3_USERS[0]
    wrong = UsmUser(user.name, "sha", "not-the-auth-key", "aes", user.priv_key)
    target = PollTarget("v3-lab", "127.0.0.1", (PROFILES["system"],), version="3",
                        v3=V3Target("127.0.0.1", wrong, snmpd.port, 1.0, 0),
                        credential="lab-v3")  # fmt: skip
    poller = SnmpPoller([target], timeout=15)
    poller.pre_render((), pages=True)

    async def body(proc: PollerProcess) -> list[Any]:
        return await proc.acollect(1e9)

    samples = run(body, PollerProcess(poller))
    assert value(samples, "opswatch_snmp_up", "v3-lab") == 0
    [error] = [s.label("error") for s in samples if s.name == "opswatch_snmp_last_error"]
    assert "wrong auth key" in error
    assert "not-the-auth-key" not in caplog.text and user.priv_key not in caplog.text
