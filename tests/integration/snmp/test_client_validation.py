"""SnmpClient against a scripted agent on loopback: what it accepts, drops and matches.

snmpd always answers correctly, so spoofed, crossed, late and reordered answers come from a
small asyncio agent here that replies with exactly the datagrams each test scripts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from collector.snmp.ber import decode_message, encode_message
from collector.snmp.client import SnmpClient, Target
from collector.snmp.errors import SnmpTimeout
from collector.snmp.model import Message, Oid, Pdu, PduType, Tag, VarBind, Version

pytestmark = pytest.mark.integration

T = TypeVar("T")
SYS_NAME_0 = Oid.parse("1.3.6.1.2.1.1.5.0")
Reply = Callable[[Message, tuple[str, int]], list[tuple[bytes, str]]]
"""Given a request and its sender, the (datagram, "agent" | "spoofer") pairs to send back."""


def answer(request: Message, **changes: Any) -> bytes:
    """The correct response to `request` (sysName = community), with `changes` applied."""
    assert isinstance(request.pdu, Pdu)
    varbinds = tuple(
        VarBind(vb.oid, Tag.OCTET_STRING, request.community) for vb in request.pdu.varbinds
    )
    pdu = Pdu(PduType.RESPONSE, request.pdu.request_id, 0, 0, varbinds)
    message = Message(request.version, request.community, pdu)
    pdu_changes = {k: v for k, v in changes.items() if k in ("request_id", "varbinds")}
    message = replace(message, pdu=replace(pdu, **pdu_changes))
    message = replace(
        message, **{k: v for k, v in changes.items() if k in ("version", "community")}
    )
    return encode_message(message)


class ScriptedAgent(asyncio.DatagramProtocol):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[Message] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.spoofer: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = decode_message(data)
        self.requests.append(request)
        for datagram, sender in self.reply(request, addr):
            (self.transport if sender == "agent" else self.spoofer).sendto(datagram, addr)  # type: ignore[union-attr]


async def with_agent(
    reply: Reply, job: Callable[[SnmpClient, Target, ScriptedAgent], Awaitable[T]]
) -> T:
    loop = asyncio.get_running_loop()
    transport, agent = await loop.create_datagram_endpoint(
        lambda: ScriptedAgent(reply), local_addr=("127.0.0.1", 0)
    )
    agent.spoofer, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        async with SnmpClient(local_addr=("127.0.0.1", 0)) as client:
            return await job(
                client, Target("127.0.0.1", port, community="right", timeout=1.0), agent
            )
    finally:
        transport.close()
        agent.spoofer.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_only_the_matching_answer_is_accepted() -> None:
    def reply(request: Message, addr: tuple[str, int]) -> list[tuple[bytes, str]]:
        assert isinstance(request.pdu, Pdu)
        return [
            (b"\x30\x03junk", "agent"),
            (answer(request, request_id=request.pdu.request_id ^ 1), "agent"),
            (answer(request, community=b"wrong"), "agent"),
            (answer(request, version=Version.V1), "agent"),
            (answer(request, varbinds=()), "spoofer"),
            (answer(request), "agent"),
        ]

    async def job(client: SnmpClient, target: Target, agent: ScriptedAgent) -> tuple[Any, ...]:
        [vb] = await client.get(target, [SYS_NAME_0])
        await asyncio.sleep(0.05)  # let the datagrams sent after the good one arrive too
        return vb.oid, vb.value, client.stats

    oid, value, stats = run(with_agent(reply, job))
    assert (oid, value) == (SYS_NAME_0, b"right")
    assert (stats.malformed, stats.unmatched, stats.rejected) == (1, 1, 3)


def test_answers_are_matched_by_request_id_across_many_targets_out_of_order() -> None:
    held: list[tuple[Message, tuple[str, int]]] = []

    def reply(request: Message, addr: tuple[str, int]) -> list[tuple[bytes, str]]:
        held.append((request, addr))
        if len(held) < 50:
            return []
        return [(answer(r), "agent") for r, _ in reversed(held)]  # all at once, last first

    async def job(client: SnmpClient, target: Target, agent: ScriptedAgent) -> list[bytes]:
        targets = [replace(target, community=f"device-{n}") for n in range(50)]
        results = await asyncio.gather(*(client.get(t, [SYS_NAME_0]) for t in targets))
        return [bytes(vbs[0].value) for vbs in results]  # type: ignore[arg-type]

    assert run(with_agent(reply, job)) == [f"device-{n}".encode() for n in range(50)]


def test_a_late_answer_to_an_earlier_try_is_accepted() -> None:
    seen: list[Message] = []

    def reply(request: Message, addr: tuple[str, int]) -> list[tuple[bytes, str]]:
        seen.append(request)  # silent to the first try, then answers the first try only
        return [] if len(seen) == 1 else [(answer(seen[0]), "agent")]

    async def job(client: SnmpClient, target: Target, agent: ScriptedAgent) -> tuple[Any, ...]:
        [vb] = await client.get(replace(target, timeout=0.2, retries=3), [SYS_NAME_0])
        return vb.value, client.stats.sent

    assert run(with_agent(reply, job)) == (b"right", 2)


def test_request_ids_wrap_within_positive_integer32() -> None:
    def reply(request: Message, addr: tuple[str, int]) -> list[tuple[bytes, str]]:
        return [(answer(request), "agent")]

    async def job(client: SnmpClient, target: Target, agent: ScriptedAgent) -> list[int]:
        client._last_id = 2**31 - 2  # as if 2^31 requests had been sent
        for _ in range(3):
            await client.get(target, [SYS_NAME_0])
        return [m.pdu.request_id for m in agent.requests]  # type: ignore[union-attr]

    assert run(with_agent(reply, job)) == [2**31 - 1, 1, 2]


def test_closing_the_client_fails_waiting_requests_at_once() -> None:
    async def job(client: SnmpClient, target: Target, agent: ScriptedAgent) -> None:
        pending = asyncio.ensure_future(client.get(replace(target, timeout=5), [SYS_NAME_0]))
        await asyncio.sleep(0.05)
        client.close()
        with pytest.raises(Exception, match="closed") as error:
            await asyncio.wait_for(pending, 1)
        assert not isinstance(error.value, SnmpTimeout)

    run(with_agent(lambda request, addr: [], job))
