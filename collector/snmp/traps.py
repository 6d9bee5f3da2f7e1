"""The SNMP trap receiver: v1/v2c traps, v3 traps and informs in, `Event`s out.

Every datagram is untrusted. Each is decoded, authenticated (community, or USM for v3) and
turned into one `Event` handed to the sink; anything else is counted under a drop reason. No
exception ever leaves `datagram_received`: a bug hit by one packet is logged, counted as
`internal_error`, and the next packet is served as usual.

v1 traps are first translated to the v2 form (RFC 3584 section 3.1), so there is one path from
(trap OID, varbinds) to an event: standard traps by their snmpTraps OID, enterprise traps by
the user's mapping table, anything else named by its OID.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from agent.model import Event, MetricMeta, MetricType, Sample, make_labels
from collector.snmp.ber import decode_message, encode_message
from collector.snmp.errors import SnmpDecodeError
from collector.snmp.model import Message, Oid, Pdu, PduType, Tag, TrapV1Pdu, VarBind, Version
from collector.snmp.trap_config import TrapConfig, TrapMapping
from collector.snmp.trap_usm import Usm, V3Rejected

log = logging.getLogger(__name__)

SYS_UPTIME = Oid.parse("1.3.6.1.2.1.1.3.0")
SNMP_TRAP_OID = Oid.parse("1.3.6.1.6.3.1.1.4.1.0")
SNMP_TRAP_ENTERPRISE = Oid.parse("1.3.6.1.6.3.1.1.4.3.0")
SNMP_TRAP_ADDRESS = Oid.parse("1.3.6.1.6.3.18.1.3.0")
SNMP_TRAPS = Oid.parse("1.3.6.1.6.3.1.1.5")
STANDARD_TRAPS = {
    Oid((*SNMP_TRAPS, n)): name
    for n, name in enumerate(
        ("coldStart", "warmStart", "linkDown", "linkUp", "authenticationFailure",
         "egpNeighborLoss"), start=1)
}  # fmt: skip
LINK_TRAPS = frozenset({"linkDown", "linkUp"})
IF_ENTRY = Oid.parse("1.3.6.1.2.1.2.2.1")
IF_X_ENTRY = Oid.parse("1.3.6.1.2.1.31.1.1.1")
IF_COLUMNS = {"ifIndex": Oid((*IF_ENTRY, 1)), "ifDescr": Oid((*IF_ENTRY, 2)),
              "ifName": Oid((*IF_X_ENTRY, 1))}  # fmt: skip
_MAX_TEXT = 1024  # a value longer than this is cut: fields are for people and rules, not dumps
_VERSION_LABEL = {Version.V1: "1", Version.V2C: "2c"}
SOURCE = "snmp_trap"

FAMILIES = (
    MetricMeta("opswatch_snmp_traps_received_total", MetricType.COUNTER,
               "SNMP notifications accepted and handed on as events, by version and trap."),
    MetricMeta("opswatch_snmp_traps_dropped_total", MetricType.COUNTER,
               "SNMP datagrams dropped by the trap receiver, by reason."),
    MetricMeta("opswatch_snmp_informs_acknowledged_total", MetricType.COUNTER,
               "SNMP informs answered with a Response PDU."),
    MetricMeta("opswatch_snmp_trap_reports_sent_total", MetricType.COUNTER,
               "SNMPv3 Report PDUs sent to inform senders (discovery, bad keys), by reason."),
)  # fmt: skip


class _Drop(Exception):
    """Control flow: this datagram is dropped for `reason` (a metric label value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Notification:
    """A trap or inform in v2 form: who sent it, how, its trap OID and its varbinds."""

    version: str
    address: str
    trap_oid: Oid
    varbinds: tuple[VarBind, ...]


class TrapReceiver(asyncio.DatagramProtocol):
    """Receives SNMP notifications on UDP and hands each on to `sink` as an `Event`."""

    def __init__(
        self,
        config: TrapConfig,
        sink: Callable[[Event], None],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._sink = sink
        self._clock = clock
        self._communities = [c.get_secret_value().encode() for c in config.communities]
        self._mappings = {Oid.parse(m.oid): m for m in config.mappings}
        self._usm = Usm(config.local_engine_id, int(clock()), config.users, monotonic)
        self._transport: asyncio.DatagramTransport | None = None
        self.received: Counter[tuple[str, str]] = Counter()
        self.dropped: Counter[str] = Counter()
        self.reports: Counter[str] = Counter()
        self.informs_acknowledged = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> tuple[str, int]:
        """Bind the configured UDP address; returns the bound (host, port)."""
        loop = asyncio.get_running_loop()
        host, port = self.config.listen_host, self.config.listen_port
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        return self.address

    def close(self) -> None:
        """Stop listening; safe to call twice."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port), e.g. to learn the port picked for `listen: 127.0.0.1:0`."""
        if self._transport is None:
            raise RuntimeError("trap receiver is not listening")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    async def __aenter__(self) -> TrapReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def error_received(self, exc: Exception) -> None:
        # ICMP port-unreachable for an answer we sent: the sender went away; nothing to do.
        log.debug("trap socket error: %s", exc)

    # ------------------------------------------------------------ per datagram

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Handle one datagram; never raises."""
        try:
            self._handle(data, str(addr[0]), addr)
        except _Drop as drop:
            self._count_drop(drop.reason, addr[0])
        except Exception:
            self._count_drop("internal_error", addr[0])
            if _power_of_two(self.dropped["internal_error"]):  # a flood must not flood the log
                log.exception("trap receiver bug on a packet from %s", addr[0])

    def _handle(self, data: bytes, source: str, addr: tuple[str | Any, int]) -> None:
        version = _peek_version(data)
        if version == 3:
            self._handle_v3(data, source, addr)
        elif version in (0, 1):
            self._handle_community(data, source, addr)
        else:
            raise _Drop("unsupported_version")

    def _handle_community(self, data: bytes, source: str, addr: tuple[str | Any, int]) -> None:
        try:
            message = decode_message(data)
        except SnmpDecodeError:
            raise _Drop("malformed") from None
        if not self._community_ok(message.community):
            raise _Drop("unknown_community")
        version = _VERSION_LABEL[message.version]
        if isinstance(message.pdu, TrapV1Pdu):
            self._deliver(from_v1(message.pdu, source))
            return
        if message.pdu.type not in (PduType.TRAP_V2, PduType.INFORM):
            raise _Drop("unexpected_pdu")
        self._deliver(from_v2(message.pdu.varbinds, version, source))
        if message.pdu.type is PduType.INFORM:
            self._send(encode_message(_response(message)), addr)
            self.informs_acknowledged += 1

    def _handle_v3(self, data: bytes, source: str, addr: tuple[str | Any, int]) -> None:
        try:
            result = self._usm.receive(data)
        except SnmpDecodeError:
            raise _Drop("malformed") from None
        if isinstance(result, V3Rejected):
            self._reject_v3(result, addr)
            return
        if result.pdu.type not in (PduType.TRAP_V2, PduType.INFORM):
            raise _Drop("unexpected_pdu")
        self._deliver(from_v2(result.pdu.varbinds, "3", source))
        if result.pdu.type is PduType.INFORM:
            self._send(self._usm.response(result), addr)
            self.informs_acknowledged += 1

    def _reject_v3(self, result: V3Rejected, addr: tuple[str | Any, int]) -> None:
        if result.report is not None:
            self._send(result.report, addr)
            self.reports[result.reason] += 1
        if result.reason != "discovery":  # a discovery probe is the protocol, not a failure
            raise _Drop(result.reason)

    def _community_ok(self, community: bytes) -> bool:
        # Compare against every entry without stopping early: timing says nothing of which.
        matches = [hmac.compare_digest(community, known) for known in self._communities]
        return any(matches)

    def _deliver(self, notification: Notification) -> None:
        event = self.to_event(notification)
        self._sink(event)  # before acknowledging: an inform is answered once we hold it
        mapped = event.name in STANDARD_TRAPS.values() or notification.trap_oid in self._mappings
        self.received[(notification.version, event.name if mapped else "unmapped")] += 1

    def _send(self, payload: bytes, addr: tuple[str | Any, int]) -> None:
        if self._transport is not None:
            self._transport.sendto(payload, addr)

    def _count_drop(self, reason: str, source: object) -> None:
        self.dropped[reason] += 1
        log.debug("dropped SNMP datagram from %s: %s", source, reason)

    # ------------------------------------------------------------ events and metrics

    def to_event(self, notification: Notification) -> Event:
        """The event for one notification: name, device and trap labels, other varbinds."""
        mapping = self._mappings.get(notification.trap_oid)
        name = _trap_name(notification.trap_oid, mapping)
        labels = {"target": self.config.devices.get(notification.address, notification.address)}
        used: set[Oid] = {SNMP_TRAP_OID}
        if STANDARD_TRAPS.get(notification.trap_oid) in LINK_TRAPS:
            labels.update(_interface_labels(notification.varbinds, used))
        if mapping is not None:
            labels.update(_mapped_labels(mapping, notification.varbinds, used))
        labels["trap"] = name
        fields = [(str(vb.oid), text(vb)) for vb in notification.varbinds if vb.oid not in used]
        return Event(name, make_labels(labels), tuple(fields), self._clock(), SOURCE)

    def describe(self) -> tuple[MetricMeta, ...]:
        """Type and help of every metric family `samples` emits."""
        return FAMILIES

    def samples(self, now: float) -> list[Sample]:
        """The receiver's own counters as samples stamped `now`."""
        out = [_sample(FAMILIES[0].name, n, now, version=v, trap=t)
               for (v, t), n in sorted(self.received.items())]  # fmt: skip
        out += [
            _sample(FAMILIES[1].name, n, now, reason=r) for r, n in sorted(self.dropped.items())
        ]
        out.append(_sample(FAMILIES[2].name, self.informs_acknowledged, now))
        out += [
            _sample(FAMILIES[3].name, n, now, reason=r) for r, n in sorted(self.reports.items())
        ]
        return out


# ---------------------------------------------------------------- notifications


def from_v1(pdu: TrapV1Pdu, source: str) -> Notification:
    """Translate a v1 Trap-PDU to v2 form as RFC 3584 section 3.1 prescribes."""
    if pdu.generic_trap == 6:  # enterpriseSpecific
        trap_oid = Oid((*pdu.enterprise, 0, pdu.specific_trap))
    elif 0 <= pdu.generic_trap < 6:
        trap_oid = Oid((*SNMP_TRAPS, pdu.generic_trap + 1))
    else:
        raise _Drop("bad_generic_trap")
    varbinds = (
        VarBind(SYS_UPTIME, Tag.TIMETICKS, pdu.timestamp),
        *pdu.varbinds,
        VarBind(SNMP_TRAP_ADDRESS, Tag.IP_ADDRESS, pdu.agent_addr),
        VarBind(SNMP_TRAP_ENTERPRISE, Tag.OBJECT_IDENTIFIER, pdu.enterprise),
    )
    return Notification("1", source, trap_oid, varbinds)


def from_v2(varbinds: tuple[VarBind, ...], version: str, source: str) -> Notification:
    """A v2 trap or inform: snmpTrapOID.0 is the second varbind (RFC 3416 section 4.2.6)."""
    trap_oid = next((vb.value for vb in varbinds[:2] if vb.oid == SNMP_TRAP_OID), None)
    if not isinstance(trap_oid, Oid):
        raise _Drop("missing_trap_oid")
    return Notification(version, source, trap_oid, varbinds)


def _response(message: Message) -> Message:
    assert isinstance(message.pdu, Pdu)
    pdu = Pdu(PduType.RESPONSE, message.pdu.request_id, 0, 0, message.pdu.varbinds)
    return Message(message.version, message.community, pdu)


def _trap_name(trap_oid: Oid, mapping: TrapMapping | None) -> str:
    if mapping is not None:
        return mapping.name
    return STANDARD_TRAPS.get(trap_oid) or str(trap_oid)


def _interface_labels(varbinds: tuple[VarBind, ...], used: set[Oid]) -> dict[str, str]:
    """ifIndex from the ifIndex varbind, else the index of any ifTable/ifXTable column."""
    index = next((vb.value for vb in varbinds if vb.oid[:-1] == IF_COLUMNS["ifIndex"]), None)
    if not isinstance(index, int):
        index = next((vb.oid[-1] for vb in varbinds if _is_if_column(vb.oid)), None)
    if index is None:
        return {}
    labels = {"ifIndex": str(index)}
    for label, column in IF_COLUMNS.items():
        instance = Oid((*column, index))
        for vb in varbinds:
            if vb.oid == instance:
                used.add(vb.oid)
                labels[label] = text(vb) if label != "ifIndex" else str(index)
    return labels


def _is_if_column(oid: Oid) -> bool:
    # entry.column.ifIndex: both tables are indexed by ifIndex alone
    return any(len(oid) == len(e) + 2 and oid.startswith(e) for e in (IF_ENTRY, IF_X_ENTRY))


def _mapped_labels(
    mapping: TrapMapping, varbinds: tuple[VarBind, ...], used: set[Oid]
) -> dict[str, str]:
    labels: dict[str, str] = {}
    for label, prefix in mapping.labels.items():
        wanted = Oid.parse(prefix)
        match = next((vb for vb in varbinds if vb.oid.startswith(wanted)), None)
        if match is not None:
            used.add(match.oid)
            labels[label] = text(match)
    return labels


def text(vb: VarBind) -> str:
    """A varbind value as display text: printable strings as is, other octets as hex."""
    value = vb.value
    if value is None:
        return vb.tag.name
    if isinstance(value, bytes):
        decoded = value.decode("utf-8", "replace")
        shown = decoded if decoded.isprintable() and "\ufffd" not in decoded else "0x" + value.hex()
        return shown[:_MAX_TEXT]
    return str(value)[:_MAX_TEXT]


def _peek_version(data: bytes) -> int:
    """msgVersion without decoding the rest: it decides which decoder gets the bytes."""
    if len(data) < 2 or data[0] != 0x30:
        raise _Drop("not_snmp")
    n, i = data[1], 2
    if n & 0x80:
        k = n & 0x7F
        if not 0 < k <= 4 or len(data) < 2 + k:
            raise _Drop("malformed" if len(data) >= 2 + k else "truncated")
        n, i = int.from_bytes(data[2 : 2 + k], "big"), 2 + k
    if i + n > len(data):
        raise _Drop("truncated")
    if i + n < len(data) or data[i : i + 2] != b"\x02\x01" or i + 3 > len(data):
        raise _Drop("malformed")
    return data[i + 2]


def _sample(name: str, value: float, now: float, **labels: str) -> Sample:
    return Sample(name, make_labels(labels), float(value), now)


def _power_of_two(n: int) -> bool:
    return n & (n - 1) == 0
