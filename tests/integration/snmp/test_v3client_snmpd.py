"""Our own SNMPv3 path (v3client) against net-snmp snmpd: the same answers as pysnmp without
pysnmp, and every failure still reported with pysnmp's diagnosis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from integration.snmp.conftest import V3_USERS, Snmpd, V3User
from integration.snmp.test_v3_snmpd import SYS_NAME_0, SYSTEM, run, user

from collector.snmp.errors import SnmpAuthError, SnmpTimeout
from collector.snmp.model import Oid, Tag, VarBind
from collector.snmp.usm import UsmClient, UsmUser, V3Target
from collector.snmp.v3client import FastUsmClient

pytestmark = pytest.mark.integration
IF_TABLE = Oid.parse("1.3.6.1.2.1.2.2")


class Spy(UsmClient):
    """pysnmp's client, counting what it is asked."""

    asked = 0

    async def request(self, *args: Any) -> list[VarBind]:
        Spy.asked += 1
        return await super().request(*args)


def fast(snmpd: Snmpd, usm_user: UsmUser, root: Oid = SYSTEM) -> tuple[list[VarBind], int, int]:
    """(walk of `root`, requests pysnmp answered, datagrams sent) through FastUsmClient."""
    sent = [0]

    def count() -> None:
        sent[0] += 1

    async def job() -> tuple[list[VarBind], int, int]:
        client = FastUsmClient(Spy, on_send=count)
        await client.open()
        try:
            target = V3Target("127.0.0.1", usm_user, snmpd.port, timeout=0.5, retries=0)
            walked = await client.walk(target, root)
            [name] = await client.get(target, [SYS_NAME_0])
            assert name.value == b"ow-test"
            return walked, client.fallbacks, sent[0]
        finally:
            client.close()

    return run(job())


def pysnmp_walk(snmpd: Snmpd, usm_user: UsmUser, root: Oid) -> list[VarBind]:
    async def job() -> list[VarBind]:
        client = UsmClient()
        try:
            target = V3Target("127.0.0.1", usm_user, snmpd.port, timeout=0.5, retries=0)
            return await client.walk(target, root)
        finally:
            client.close()

    return run(job())


@pytest.mark.parametrize("u", V3_USERS, ids=lambda u: u.name)
def test_walks_equal_pysnmp_and_never_fall_back(snmpd: Snmpd, u: V3User) -> None:
    walked, fallbacks, sent = fast(snmpd, user(u), IF_TABLE)
    theirs = pysnmp_walk(snmpd, user(u), IF_TABLE)
    # the same objects, types and values; counters (lo carries this very traffic) may move
    assert [(vb.oid, vb.tag) for vb in walked] == [(vb.oid, vb.tag) for vb in theirs]
    moving = (Tag.COUNTER32, Tag.COUNTER64, Tag.TIMETICKS)
    assert [vb for vb in walked if vb.tag not in moving] == [
        vb for vb in theirs if vb.tag not in moving
    ]
    assert len(walked) > 50
    assert fallbacks == 0
    assert sent >= 3  # discovery, the walk's pages and the GET: all on our own path


@pytest.mark.parametrize(
    ("change", "error", "text"),
    [
        ({"auth_key": "wrong-auth-key"}, SnmpAuthError, "wrong auth key"),
        ({"user": "nobody-here"}, SnmpAuthError, "unknown user"),
        ({"priv_key": "wrong-priv-key"}, SnmpAuthError, "wrong priv key"),
        ({"priv_protocol": "aes256c"}, SnmpAuthError, "AES dialect mismatch"),
    ],
)
def test_failures_are_reported_as_pysnmp_diagnoses_them(
    snmpd: Snmpd, change: dict[str, str], error: type[Exception], text: str
) -> None:
    u = V3_USERS[2] if "priv_protocol" in change else V3_USERS[0]  # SHA-1 + AES-256 for dialects
    Spy.asked = 0
    with pytest.raises(error, match=text):
        fast(snmpd, user(u, **change))
    assert Spy.asked >= 1


def test_a_silent_port_times_out_through_pysnmp() -> None:
    async def job() -> None:
        client = FastUsmClient(Spy)
        await client.open()
        try:
            # nothing listens on 127.0.0.1:1/udp
            target = V3Target("127.0.0.1", user(V3_USERS[0]), 1, timeout=0.2, retries=0)
            await client.get(target, [SYS_NAME_0])
        finally:
            client.close()

    with pytest.raises(SnmpTimeout):
        asyncio.run(asyncio.wait_for(job(), 30))


def test_a_target_named_by_hostname_is_polled_on_our_path(snmpd: Snmpd) -> None:
    """The name is looked up once a poll; the answers then come from the address asked."""
    from collector.snmp.poller import PollTarget, SnmpPoller
    from collector.snmp.profiles import available_profiles

    usm_user = user(V3_USERS[1])
    target = PollTarget(
        "by-name", "localhost", (available_profiles()["system"],), port=snmpd.port,
        v3=V3Target("localhost", usm_user, snmpd.port, timeout=0.5, retries=0),
        credential="lab-v3",
    )  # fmt: skip
    poller = SnmpPoller([target], timeout=20)

    async def job() -> tuple[list[Any], int]:
        try:
            samples = await poller.acollect(0.0)
            return samples, poller._usm["lab-v3"].fallbacks
        finally:
            poller.close()

    samples, fallbacks = run(job())
    assert [s.value for s in samples if s.name == "opswatch_snmp_up"] == [1.0]
    assert fallbacks == 0


def test_targets_sharing_a_credential_all_take_our_path_from_the_first_round(
    snmpd: Snmpd,
) -> None:
    """The v3 client is opened before the targets of one round share it: none goes to pysnmp."""
    from collector.snmp.poller import PollTarget, SnmpPoller
    from collector.snmp.profiles import available_profiles

    usm_user = user(V3_USERS[0])
    targets = [
        PollTarget(
            f"sw{i}", "127.0.0.1", (available_profiles()["system"],), port=snmpd.port,
            v3=V3Target("127.0.0.1", usm_user, snmpd.port, timeout=1.0, retries=1),
            credential="lab-v3",
        )
        for i in range(8)
    ]  # fmt: skip
    poller = SnmpPoller(targets, timeout=20)

    async def job() -> tuple[list[Any], int, int]:
        try:
            samples = await poller.acollect(0.0)
            return samples, poller._usm["lab-v3"].fallbacks, len(poller._usm)
        finally:
            poller.close()

    samples, fallbacks, clients = run(job())
    assert [s.value for s in samples if s.name == "opswatch_snmp_up"] == [1.0] * 8
    assert (fallbacks, clients) == (0, 1)
