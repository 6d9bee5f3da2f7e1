"""SNMPv3 (USM) get and walk on the poll's hot path: our BER, hashlib and `cryptography`.

pysnmp's hlapi costs ~5 ms of CPU a PDU (pyasn1 on both sides of every message), 400 ms a
48-port switch, where the v1/v2c client needs ~9 ms. Here a request is a ScopedPDU encoded by
ber.py, encrypted and signed with the trap receiver's USM primitives (trap_usm.py: RFC 3414,
3826, 7860 and both AES-256 key extensions), and an answer is verified, decrypted and decoded
the same way. Keys are localized once per engine.

pysnmp (usm.py) stays for everything that is not a plain answer: a request that times out,
that the agent answers with a Report (wrong key, unknown user, time window, security level),
or whose answer fails our checks is asked again through pysnmp, whose error diagnosis (the
AES-256 dialect probe among others) is what the user sees. The engine is discovered again
after any such failure. Targets with a configured engine ID go to pysnmp directly.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from collector.snmp.errors import SnmpDecodeError, SnmpError, SnmpResponseError
from collector.snmp.model import Oid, Pdu, PduType, Tag, VarBind, bulk_walk
from collector.snmp.trap_usm import (
    FLAG_AUTH,
    FLAG_PRIV,
    FLAG_REPORTABLE,
    Header,
    KeyCache,
    LocalUser,
    decrypt,
    digest,
    encode_v3,
    parse_message,
    parse_scoped_pdu,
    scoped_pdu,
)
from collector.snmp.v3model import UsmUser, V3Target

log = logging.getLogger(__name__)

# v3model's protocol names -> trap_usm's (the trap receiver's config spells them with a dash)
_AUTH_NAMES = {"md5": "md5", "sha": "sha", "sha224": "sha-224", "sha256": "sha-256",
               "sha384": "sha-384", "sha512": "sha-512"}  # fmt: skip
_PRIV_NAMES = {"des": "des", "aes": "aes", "aes192": "aes-192", "aes192c": "aes-192c",
               "aes256": "aes-256", "aes256c": "aes-256c"}  # fmt: skip
_MAX_ID = 0x7FFFFFFF
_AUTHORIZATION_ERROR = 16


class Fallback(Protocol):
    """The pysnmp client (usm.UsmClient): asked whenever our own path does not get an answer."""

    async def request(self, target: V3Target, kind: str, oids: list[Oid]) -> list[VarBind]: ...

    def close(self) -> None: ...


class _NoAnswer(Exception):
    """Our path got no usable answer (timeout, Report, failed check): ask pysnmp instead."""


class _Refused(_NoAnswer):
    """The agent answered with an unauthenticated Report (wrong digest, unknown user...)."""


@dataclass(slots=True)
class _Engine:
    """An agent's authoritative engine as discovered, and the user's keys localized to it."""

    engine_id: bytes
    boots: int
    engine_time: int
    read_at: float  # time.monotonic() when engine_time was read
    user: LocalUser = field(repr=False)

    def now(self) -> int:
        return self.engine_time + int(time.monotonic() - self.read_at)


@dataclass(slots=True)
class _Waiting:
    future: asyncio.Future[tuple[Any, Pdu]]
    addr: tuple[str, int]
    user: LocalUser | None  # None: a discovery probe, answered without authentication


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, client: FastUsmClient) -> None:
        self._client = client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._client._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("SNMPv3 socket error: %s", exc)


class FastUsmClient:
    """v3 get and walk for many targets over one UDP socket; pysnmp only when needed."""

    def __init__(
        self,
        fallback: Callable[[], Fallback],
        *,
        max_repetitions: int = 25,
        max_walk_varbinds: int = 100_000,
        on_send: Callable[[], None] | None = None,
    ) -> None:
        self._make_fallback = fallback
        self._fallback: Fallback | None = None
        self._max_repetitions = max_repetitions
        self._max_walk_varbinds = max_walk_varbinds
        self._on_send = on_send or (lambda: None)
        self._engines: dict[tuple[str, int, str], _Engine] = {}
        self._keys = KeyCache()  # the megabyte hash once per passphrase, not per engine
        self._waiting: dict[int, _Waiting] = {}
        self._last_id = secrets.randbelow(_MAX_ID)
        self._transport: asyncio.DatagramTransport | None = None
        self.fallbacks = 0
        """Requests answered through pysnmp after our path got no answer."""
        self.rejected = 0
        """Datagrams dropped: unknown msgID, other source, failed digest or decryption."""

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), family=socket.AF_INET
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for waiting in self._waiting.values():
            if not waiting.future.done():
                waiting.future.set_exception(SnmpError("SNMPv3 client closed"))
        self._waiting.clear()
        if self._fallback is not None:
            self._fallback.close()
            self._fallback = None

    async def get(self, target: V3Target, oids: Sequence[Sequence[int]]) -> list[VarBind]:
        """GET `oids`; exceptions (noSuchObject...) come back as tagged varbinds."""
        return await self.request(target, "get", [Oid(o) for o in oids])

    async def walk(self, target: V3Target, root: Sequence[int]) -> list[VarBind]:
        """Every varbind under `root`, by GetBulk pages."""

        async def next_page(after: Oid) -> list[VarBind]:
            return await self.request(target, "bulk", [after])

        return await bulk_walk(next_page, Oid(root), self._max_walk_varbinds, target.host)

    async def request(self, target: V3Target, kind: str, oids: list[Oid]) -> list[VarBind]:
        """One GET or GetBulk; pysnmp answers it (or says why not) if our path cannot."""
        if target.user.engine_id is None and self._transport is not None:
            try:
                return await self._request(target, kind, oids)
            except SnmpResponseError:
                raise  # the agent's own answer (tooBig...): pysnmp would get the same
            except Exception as why:  # anything else: pysnmp asks again and says what is wrong
                log.debug("v3 request to %s through pysnmp: %s", target.host, why)
                self._engines.pop(_key(target), None)  # discover again next time
        self.fallbacks += 1
        if self._fallback is None:
            self._fallback = self._make_fallback()
        return await self._fallback.request(target, kind, oids)

    async def _request(self, target: V3Target, kind: str, oids: list[Oid]) -> list[VarBind]:
        engine = self._engines.get(_key(target))
        if engine is None:
            engine = self._engines[_key(target)] = await self._discover(target)
        pdu_type = PduType.GET_BULK if kind == "bulk" else PduType.GET
        reps = self._max_repetitions if kind == "bulk" else 0
        varbinds = tuple(VarBind(o, Tag.NULL, None) for o in oids)
        user = target.user
        flags = engine.user.level | FLAG_REPORTABLE
        for attempt in range(2):
            msg_id = self._new_id()
            scoped = scoped_pdu(
                engine.engine_id, user.context.encode(), Pdu(pdu_type, msg_id, 0, reps, varbinds)
            )
            header = Header(engine.engine_id, engine.boots, engine.now(), msg_id, flags)
            message = encode_v3(header, user.user.encode(), engine.user, scoped)
            answer, pdu = await self._exchange(target, msg_id, message, engine.user)
            if attempt == 0 and _not_in_time_window(pdu) and engine.user.auth:
                # The agent rebooted, or told us boots/time 0 at discovery: its authenticated
                # Report carries the clock to use (RFC 3414 3.2 7b). Once, then pysnmp.
                engine.boots, engine.engine_time = answer.boots, answer.engine_time
                engine.read_at = time.monotonic()
                continue
            break
        if pdu.type is not PduType.RESPONSE:
            raise _NoAnswer(f"{pdu.type.name} {[str(vb.oid) for vb in pdu.varbinds]}")
        if pdu.error_status == _AUTHORIZATION_ERROR:
            raise _NoAnswer("authorizationError")  # pysnmp's path words it for the user
        if pdu.error_status:
            raise SnmpResponseError(pdu.error_status, pdu.error_index)
        return list(pdu.varbinds)

    async def _discover(self, target: V3Target) -> _Engine:
        """Ask with an empty engine ID; the Report names the engine, its boots and its time."""
        msg_id = self._new_id()
        scoped = scoped_pdu(b"", b"", Pdu(PduType.GET, msg_id, 0, 0, ()))
        probe = encode_v3(Header(b"", 0, 0, msg_id, FLAG_REPORTABLE), b"", None, scoped)
        message, pdu = await self._exchange(target, msg_id, probe, None)
        if pdu.type is not PduType.REPORT or not message.engine_id:
            raise _NoAnswer("engine discovery got no Report with an engine ID")
        return _Engine(
            message.engine_id,
            message.boots,
            message.engine_time,
            time.monotonic(),
            self._localized(target.user, message.engine_id),
        )

    async def _exchange(
        self, target: V3Target, msg_id: int, data: bytes, user: LocalUser | None
    ) -> tuple[Any, Pdu]:
        """Send with retries and growing timeouts; the first answer that passes the checks."""
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        addr = (target.host, target.port)
        waiting = _Waiting(loop.create_future(), addr, user)
        self._waiting[msg_id] = waiting
        try:
            for attempt in range(target.retries + 1):
                self._on_send()
                self._transport.sendto(data, addr)  # a retry resends the same message
                timer = loop.call_later(target.timeout * 2.0**attempt, _expire, waiting.future)
                try:
                    return await waiting.future
                except TimeoutError:
                    waiting.future = loop.create_future()
                finally:
                    timer.cancel()
        finally:
            self._waiting.pop(msg_id, None)
        raise _NoAnswer(f"no answer after {target.retries + 1} tries")

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = parse_message(data)
        except SnmpDecodeError:
            self.rejected += 1
            return
        waiting = self._waiting.get(message.msg_id)
        if waiting is None or addr[:2] != waiting.addr or waiting.future.done():
            self.rejected += 1
            return
        try:
            pdu = _open(message, waiting.user)
        except _Refused as exc:  # stop waiting: pysnmp asks again and says why
            waiting.future.set_exception(exc)
            return
        except (SnmpDecodeError, _NoAnswer, ValueError) as exc:
            self.rejected += 1  # spoofed, or our keys are wrong: the timeout sends us to pysnmp
            log.debug("dropped SNMPv3 answer from %s: %s", addr[0], exc)
            return
        waiting.future.set_result((message, pdu))

    def _localized(self, user: UsmUser, engine_id: bytes) -> LocalUser:
        return self._keys.localize_user(
            user.user,
            _AUTH_NAMES[user.auth_protocol] if user.auth_protocol else None,
            user.auth_key,
            _PRIV_NAMES[user.priv_protocol] if user.priv_protocol else None,
            user.priv_key,
            engine_id,
        )

    def _new_id(self) -> int:
        for _ in range(len(self._waiting) + 1):  # wraps within 1..2^31-1, skipping ids in use
            self._last_id = self._last_id % _MAX_ID + 1
            if self._last_id not in self._waiting:
                break
        return self._last_id


def _open(message: Any, user: LocalUser | None) -> Pdu:
    """Check the answer's digest and decrypt it; the PDU inside."""
    if user is not None and user.auth:
        if not message.flags & FLAG_AUTH:
            if parse_scoped_pdu(message.data)[2].type is PduType.REPORT:
                raise _Refused("unauthenticated Report")  # forged at worst: pysnmp asks again
            raise _NoAnswer("unauthenticated answer to an authenticated request")
        start, end = message.auth_span
        raw = message.raw
        if not hmac.compare_digest(
            digest(user, raw[:start] + bytes(end - start) + raw[end:]), message.auth_params
        ):
            raise _NoAnswer("wrong digest")
    plain = message.data
    if message.flags & FLAG_PRIV:
        if user is None or not user.priv:
            raise _NoAnswer("encrypted answer to a plain request")
        try:
            plain = decrypt(user, message.boots, message.engine_time, message.priv_params, plain)
        except Exception as exc:  # trap_usm's rejection of a bad salt or length
            raise _NoAnswer("cannot decrypt") from exc
    return parse_scoped_pdu(plain)[2]


_NOT_IN_TIME_WINDOW = Oid((1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0))  # usmStatsNotInTimeWindows.0


def _not_in_time_window(pdu: Pdu) -> bool:
    return pdu.type is PduType.REPORT and any(vb.oid == _NOT_IN_TIME_WINDOW for vb in pdu.varbinds)


def _expire(future: asyncio.Future[tuple[Any, Pdu]]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _key(target: V3Target) -> tuple[str, int, str]:
    return (target.host, target.port, target.user.user)
