"""The SNMP package's plain types: OIDs, value tags, varbinds and PDUs.

Everything past the wire speaks these, whichever codec produced them (our BER decoder for
v1/v2c, pysnmp for v3), so collectors and the trap receiver never see pyasn1 objects.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from collector.snmp.errors import SnmpError, SnmpValueError


class Oid(tuple[int, ...]):
    """An OBJECT IDENTIFIER as a tuple of ints: ordered, hashable, comparable with tuples."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> Oid:
        """Parse dotted numeric text (`1.3.6.1.2.1` or `.1.3.6.1.2.1`)."""
        parts = text.strip().removeprefix(".").split(".")
        if not all(p.isascii() and p.isdigit() for p in parts):
            raise SnmpValueError(f"not a numeric OID: {text!r}")
        return cls(int(p) for p in parts)

    def __str__(self) -> str:
        return ".".join(map(str, self))

    def __repr__(self) -> str:
        return f"Oid('{self}')"

    def startswith(self, prefix: Sequence[int]) -> bool:
        """True if `prefix` is this OID or one of its ancestors."""
        return self[: len(prefix)] == tuple(prefix)


class Tag(enum.IntEnum):
    """ASN.1 tags of the SNMP value types (SNMPv2-SMI) and of the v2 varbind exceptions."""

    INTEGER = 0x02
    OCTET_STRING = 0x04
    NULL = 0x05
    OBJECT_IDENTIFIER = 0x06
    IP_ADDRESS = 0x40
    COUNTER32 = 0x41
    GAUGE32 = 0x42  # also Unsigned32: same tag on the wire
    TIMETICKS = 0x43
    OPAQUE = 0x44
    COUNTER64 = 0x46
    NO_SUCH_OBJECT = 0x80
    NO_SUCH_INSTANCE = 0x81
    END_OF_MIB_VIEW = 0x82


class PduType(enum.IntEnum):
    """Context tags of the PDUs (RFC 1157 and RFC 3416)."""

    GET = 0xA0
    GET_NEXT = 0xA1
    RESPONSE = 0xA2
    SET = 0xA3
    TRAP_V1 = 0xA4
    GET_BULK = 0xA5
    INFORM = 0xA6
    TRAP_V2 = 0xA7
    REPORT = 0xA8


class Version(enum.IntEnum):
    """The msgVersion field: v1 is 0, v2c is 1."""

    V1 = 0
    V2C = 1


Value = int | bytes | str | Oid | None
"""Integers and counters → int, OCTET STRING/Opaque → bytes, IpAddress → dotted str, OID → Oid,
NULL and the three exceptions → None (the tag tells which)."""


class VarBind(NamedTuple):
    """One variable binding: the OID, its SNMP type and its Python value."""

    oid: Oid
    tag: Tag
    value: Value

    @property
    def is_exception(self) -> bool:
        """noSuchObject, noSuchInstance or endOfMibView: the agent has no value here."""
        return self.tag >= Tag.NO_SUCH_OBJECT


@dataclass(frozen=True, slots=True)
class Pdu:
    """Every PDU but the v1 trap; for GetBulk the two error fields carry the bulk parameters."""

    type: PduType
    request_id: int
    error_status: int  # non-repeaters in a GetBulk
    error_index: int  # max-repetitions in a GetBulk
    varbinds: tuple[VarBind, ...]


@dataclass(frozen=True, slots=True)
class TrapV1Pdu:
    """The RFC 1157 Trap-PDU, with its own header fields."""

    enterprise: Oid
    agent_addr: str
    generic_trap: int
    specific_trap: int
    timestamp: int
    varbinds: tuple[VarBind, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """A community-based (v1 or v2c) SNMP message."""

    version: Version
    community: bytes = field(repr=False)  # a secret
    pdu: Pdu | TrapV1Pdu


def take_page(page: list[VarBind], root: Oid, current: Oid, out: list[VarBind]) -> bool:
    """Append a walk page's varbinds under `root` to `out`; True once the walk is complete.

    Raises SnmpError when the agent goes backwards: a walk must always move forward.
    """
    depth, end = len(root), Tag.END_OF_MIB_VIEW
    append = out.append
    for vb in page:
        oid = vb[0]
        if vb[1] is end or oid[:depth] != root:
            return True
        if oid <= current:
            raise SnmpError(f"agent returned {oid} after {current}: OIDs not increasing")
        append(vb)
        current = oid
    return False


async def bulk_walk(
    next_page: Callable[[Oid], Awaitable[list[VarBind]]], root: Oid, limit: int, host: str
) -> list[VarBind]:
    """Every varbind under `root`, asking `next_page(after)` until the subtree ends.

    Bounded: every page must move forward (`take_page`) and the total is capped at `limit`.
    """
    out: list[VarBind] = []
    current = root
    while True:
        page = await next_page(current)
        if not page:
            raise SnmpError(f"{host}: empty response to a walk request")
        if take_page(page, root, current, out):
            return out
        current = out[-1].oid
        if len(out) > limit:
            raise SnmpError(f"{host}: walk of {root} exceeds {limit}")
