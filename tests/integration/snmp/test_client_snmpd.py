"""SnmpClient against a real net-snmp snmpd on loopback, checked against net-snmp's own walk."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from collector.snmp.client import SnmpClient, Target
from collector.snmp.errors import SnmpResponseError, SnmpTimeout
from collector.snmp.model import Oid, Tag, VarBind

T = TypeVar("T")
Snmpd = Any  # the conftest fixture's dataclass: port, community, env, address, sys_descr

pytestmark = pytest.mark.integration

IF_TABLE = Oid.parse("1.3.6.1.2.1.2.2")
SYSTEM = Oid.parse("1.3.6.1.2.1.1")
SYS_DESCR_0, SYS_UPTIME_0 = Oid.parse("1.3.6.1.2.1.1.1.0"), Oid.parse("1.3.6.1.2.1.1.3.0")
NET_SNMP_TYPES = {
    "INTEGER": Tag.INTEGER,
    "Hex-STRING": Tag.OCTET_STRING,
    "STRING": Tag.OCTET_STRING,
    "OID": Tag.OBJECT_IDENTIFIER,
    "IpAddress": Tag.IP_ADDRESS,
    "Counter32": Tag.COUNTER32,
    "Gauge32": Tag.GAUGE32,
    "Timeticks": Tag.TIMETICKS,
    "Counter64": Tag.COUNTER64,
}


def target(snmpd: Snmpd, **kw: Any) -> Target:
    options: dict[str, Any] = {"port": snmpd.port, "community": snmpd.community, "timeout": 1.0}
    return Target("127.0.0.1", **(options | kw))


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))  # every test is bounded in time


async def with_client(job: Callable[[SnmpClient], Awaitable[T]], **kw: Any) -> T:
    async with SnmpClient(local_addr=("127.0.0.1", 0), **kw) as client:
        return await job(client)


def snmpbulkwalk(snmpd: Snmpd, root: Oid) -> list[tuple[Oid, Tag, object]]:
    """net-snmp's walk of `root`: numeric OIDs (-On), enums as numbers (-Oe), strings in hex."""
    argv = ["snmpbulkwalk", "-v2c", "-c", snmpd.community, "-On", "-Oe", "-Ox", "-Ot", "-Cr25",
            snmpd.address, str(root)]  # fmt: skip
    out = subprocess.run(
        argv, env=snmpd.env, capture_output=True, text=True, timeout=30, check=True
    )
    lines: list[str] = []
    for line in out.stdout.splitlines():  # a long Hex-STRING continues on the next lines
        lines.append(line) if line.startswith(".") else lines.__setitem__(
            -1, lines[-1] + " " + line
        )
    return [parse_net_snmp_line(line) for line in lines]


def parse_net_snmp_line(line: str) -> tuple[Oid, Tag, object]:
    oid_text, _, rest = line.partition(" = ")
    if rest == '""':
        return Oid.parse(oid_text), Tag.OCTET_STRING, b""
    kind, sep, value = rest.partition(": ")
    if not sep and rest.isdigit():  # -Ot prints TimeTicks as a bare number
        return Oid.parse(oid_text), Tag.TIMETICKS, int(rest)
    tag = NET_SNMP_TYPES[kind]
    if tag is Tag.OCTET_STRING:
        return Oid.parse(oid_text), tag, bytes.fromhex(value.replace(" ", ""))
    if tag is Tag.OBJECT_IDENTIFIER:
        return Oid.parse(oid_text), tag, Oid.parse(value)
    if tag is Tag.IP_ADDRESS:
        return Oid.parse(oid_text), tag, value
    return Oid.parse(oid_text), tag, int(value.split()[0])


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A bound UDP port that never answers: a device that is down but still routed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_get_sys_descr_and_uptime(snmpd: Snmpd) -> None:
    async def job(client: SnmpClient) -> list[VarBind]:
        return await client.get(target(snmpd), [SYS_DESCR_0, SYS_UPTIME_0])

    descr, uptime = run(with_client(job))
    assert (descr.oid, descr.tag, descr.value) == (
        SYS_DESCR_0,
        Tag.OCTET_STRING,
        snmpd.sys_descr.encode(),
    )
    assert uptime.tag is Tag.TIMETICKS and isinstance(uptime.value, int) and uptime.value >= 0


def test_missing_objects_come_back_as_exceptions_in_v2c_and_errors_in_v1(snmpd: Snmpd) -> None:
    missing = [Oid.parse("1.3.6.1.2.1.1.99.0"), Oid.parse("1.3.6.1.2.1.1.1.1")]

    async def job(client: SnmpClient) -> list[VarBind]:
        with pytest.raises(SnmpResponseError) as v1_error:
            await client.get(target(snmpd, version="1"), missing[:1])
        assert (v1_error.value.status, v1_error.value.index) == (2, 1)  # noSuchName
        return await client.get(target(snmpd), missing)

    tags = [vb.tag for vb in run(with_client(job))]
    assert tags == [Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE]


def test_iftable_walk_equals_snmpbulkwalk(snmpd: Snmpd) -> None:
    theirs = snmpbulkwalk(snmpd, IF_TABLE)  # first: counters may only have grown since

    async def job(client: SnmpClient) -> list[VarBind]:
        return await client.walk(target(snmpd), IF_TABLE)

    ours = run(with_client(job))
    assert len(theirs) >= 22 and [vb.oid for vb in ours] == [oid for oid, _, _ in theirs]
    assert [vb.tag for vb in ours] == [tag for _, tag, _ in theirs]
    for vb, (_, _, value) in zip(ours, theirs, strict=True):
        assert vb.value == value or (vb.tag is Tag.COUNTER32 and vb.value >= value)


def test_v1_getnext_walk_and_small_bulk_pages_give_the_same_system_group(snmpd: Snmpd) -> None:
    async def job(client: SnmpClient) -> list[list[VarBind]]:
        return [
            await client.walk(target(snmpd, version="1"), SYSTEM),
            await client.walk(target(snmpd), SYSTEM),
        ]

    v1_walk, v2_walk = run(with_client(job, max_repetitions=2))
    assert len(v2_walk) > 5 and all(vb.oid.startswith(SYSTEM) for vb in v2_walk)
    strip_uptime = [(vb.oid, vb.tag, vb.value) for vb in v2_walk if vb.oid != SYS_UPTIME_0]
    assert [(vb.oid, vb.tag, vb.value) for vb in v1_walk if vb.oid != SYS_UPTIME_0] == strip_uptime


def test_wrong_community_is_a_timeout_after_the_timeout(snmpd: Snmpd) -> None:
    async def job(client: SnmpClient) -> float:
        started = time.monotonic()
        with pytest.raises(SnmpTimeout):
            await client.get(
                target(snmpd, community="wrong", timeout=0.5, retries=0), [SYS_DESCR_0]
            )
        return time.monotonic() - started

    assert 0.45 <= run(with_client(job)) < 1.5  # v2c agents stay silent: nothing to report


def test_retries_back_off_exponentially(black_hole: int) -> None:
    async def job(client: SnmpClient) -> float:
        started = time.monotonic()
        with pytest.raises(SnmpTimeout):
            await client.get(Target("127.0.0.1", black_hole, timeout=0.2, retries=2), [SYS_DESCR_0])
        assert client.stats.sent == 3 and client.stats.timeouts == 1
        return time.monotonic() - started

    assert 1.35 <= run(with_client(job)) < 2.5  # 0.2 + 0.4 + 0.8 s


def test_dead_targets_do_not_delay_a_live_walk(snmpd: Snmpd, black_hole: int) -> None:
    dead = [
        Target("127.0.0.1", black_hole, timeout=3.0, retries=0),
        Target("127.0.0.2", snmpd.port + 1 if snmpd.port < 65535 else 1025, timeout=3.0, retries=0),
        Target("127.0.0.3", black_hole, timeout=3.0, retries=0),
    ]

    async def timed(coro: Awaitable[list[VarBind]]) -> tuple[float, object]:
        try:
            result: object = await coro
        except SnmpTimeout as exc:
            result = exc
        return time.monotonic(), result

    async def job(client: SnmpClient) -> tuple[float, list[tuple[float, object]]]:
        started = time.monotonic()
        dead_walks = [timed(client.walk(t, IF_TABLE)) for t in dead]
        live = timed(client.walk(target(snmpd), IF_TABLE))
        results = await asyncio.gather(live, *dead_walks)
        return started, results

    started, [(live_at, live), *dead_results] = run(with_client(job, max_in_flight=4))
    assert isinstance(live, list) and len(live) >= 22
    assert live_at - started < 1.0  # the dead ones wait 3 s each, concurrently
    for at, result in dead_results:
        assert isinstance(result, SnmpTimeout) and 2.9 <= at - started < 4.5
