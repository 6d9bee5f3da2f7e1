"""A lean BER codec for SNMP v1/v2c messages: the poller's and the trap receiver's hot path.

Why not pyasn1 here: on a recorded 48-port ifTable walk, pyasn1 through pysnmp's v2c spec
takes ~46 µs per varbind and this decoder 1.0-1.7 µs (bench/snmp_codec.py, figures in
bench/README.md); at hundreds of devices that is the difference between keeping up and not.
pysnmp stays the tool for v3/USM in its own module; this one imports neither.

Only the BER subset SNMP uses is accepted: one-byte tags, definite lengths of at most four
length octets, minimal OID sub-identifiers. Any malformed input raises `SnmpDecodeError` and
nothing else; every length is checked against its enclosing one, so truncation cannot read past
the datagram and no input is ever walked twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

from collector.snmp.errors import SnmpDecodeError, SnmpValueError
from collector.snmp.model import (
    Message,
    Oid,
    Pdu,
    PduType,
    Tag,
    TrapV1Pdu,
    Value,
    VarBind,
    Version,
)

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
_FIRST_SUBID_MAX = 80 + _U32  # the first sub-identifier packs two arcs: 40 * X + Y


_V1_PDUS = frozenset({PduType.GET, PduType.GET_NEXT, PduType.RESPONSE, PduType.SET})
_V2_PDUS = frozenset(PduType) - {PduType.TRAP_V1}
_TAGS = {int(t): t for t in Tag}
_PDU_TYPES = {int(t): t for t in PduType}
_VERSIONS = {int(v): v for v in Version}  # a dict lookup: Version(n) costs 0.3 µs
_NEW = tuple.__new__  # builds a VarBind/Oid without NamedTuple's Python-level __new__
_OID_CACHE: dict[bytes, Oid] = {}
# Polls repeat the same instance OIDs (and switches of one model share them): a cache hit costs
# ~0.1 µs against ~0.5 µs to rebuild; 8192 entries (~2 MB) hold several 48-port IF-MIB walks.
_OID_CACHE_SIZE = 8192


# ---------------------------------------------------------------- decoding


def decode_message(data: bytes | bytearray | memoryview) -> Message:
    """Decode one v1/v2c message; anything malformed raises `SnmpDecodeError`."""
    buf = bytes(data)
    try:
        return _message(buf)
    except (IndexError, ValueError, KeyError, OverflowError) as exc:
        raise SnmpDecodeError(f"malformed SNMP message: {exc}") from exc


def _message(buf: bytes) -> Message:
    tag, i, end = _header(buf, 0, len(buf))
    if tag != 0x30 or end != len(buf):
        raise SnmpDecodeError("not one SNMP message SEQUENCE")
    version, i = _integer_field(buf, i, end)
    if version not in (0, 1):
        raise SnmpDecodeError(f"not a v1/v2c message (version field {version})")
    tag, s, i = _header(buf, i, end)
    if tag != Tag.OCTET_STRING:
        raise SnmpDecodeError("community is not an OCTET STRING")
    community = buf[s:i]
    pdu_tag, s, e = _header(buf, i, end)
    if e != end:
        raise SnmpDecodeError("bytes after the PDU")
    pdu_type = _PDU_TYPES.get(pdu_tag)
    if pdu_type not in (_V2_PDUS if version else _V1_PDUS | {PduType.TRAP_V1}):
        raise SnmpDecodeError(f"PDU tag 0x{pdu_tag:02x} not allowed in version {version}")
    pdu = _trap_v1(buf, s, e) if pdu_type is PduType.TRAP_V1 else _pdu(buf, s, e, pdu_tag)
    return Message(_VERSIONS[version], community, pdu)


def _header(buf: bytes, i: int, end: int) -> tuple[int, int, int]:
    """Read the TLV header at `i`: (tag, content start, content end), within `end`."""
    tag = buf[i]
    n = buf[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        if not 0 < k <= 4:
            raise SnmpDecodeError("indefinite or oversized BER length")
        n = int.from_bytes(buf[i : i + k], "big")
        i += k
    stop = i + n
    if stop > end:
        raise SnmpDecodeError("TLV runs past its container (truncated)")
    return tag, i, stop


def _integer_field(buf: bytes, i: int, end: int) -> tuple[int, int]:
    tag, s, e = _header(buf, i, end)
    if tag != Tag.INTEGER:
        raise SnmpDecodeError(f"expected INTEGER, got tag 0x{tag:02x}")
    return _signed(buf, s, e), e


def _pdu(buf: bytes, i: int, end: int, pdu_tag: int) -> Pdu:
    request_id, i = _integer_field(buf, i, end)
    error_status, i = _integer_field(buf, i, end)
    error_index, i = _integer_field(buf, i, end)
    varbinds = _varbind_list(buf, i, end)
    return Pdu(_PDU_TYPES[pdu_tag], request_id, error_status, error_index, varbinds)


def _trap_v1(buf: bytes, i: int, end: int) -> TrapV1Pdu:
    tag, s, i = _header(buf, i, end)
    if tag != Tag.OBJECT_IDENTIFIER:
        raise SnmpDecodeError("trap enterprise is not an OID")
    enterprise = _oid(buf, s, i)
    tag, s, i = _header(buf, i, end)
    if tag != Tag.IP_ADDRESS:
        raise SnmpDecodeError("trap agent-addr is not an IpAddress")
    agent_addr = _ip_address(buf, s, i)
    generic, i = _integer_field(buf, i, end)
    specific, i = _integer_field(buf, i, end)
    tag, s, i = _header(buf, i, end)
    if tag != Tag.TIMETICKS:
        raise SnmpDecodeError("trap time-stamp is not TimeTicks")
    timestamp = _u32(buf, s, i)
    varbinds = _varbind_list(buf, i, end)
    return TrapV1Pdu(enterprise, agent_addr, generic, specific, timestamp, varbinds)


def _varbind_list(buf: bytes, i: int, end: int) -> tuple[VarBind, ...]:
    tag, i, stop = _header(buf, i, end)
    if tag != 0x30 or stop != end:
        raise SnmpDecodeError("varbind list is not the PDU's last SEQUENCE")
    out: list[VarBind] = []
    append, cached, tags, values = out.append, _OID_CACHE.get, _TAGS, _VALUE
    while i < stop:
        # The hot loop. Short-form headers, the OID cache and the 32-bit unsigned values
        # (counters, gauges, ticks) are read inline: a call per TLV, per OID and per value
        # was most of the cost per varbind (1.7 -> 0.8 µs for the headers alone).
        if buf[i] != 0x30:
            raise SnmpDecodeError("varbind is not a SEQUENCE")
        if buf[i + 1] < 0x80:
            s = i + 2
            i = s + buf[i + 1]
            if i > stop:
                raise SnmpDecodeError("varbind runs past its list (truncated)")
        else:
            _, s, i = _header(buf, i, stop)
        if buf[s] != Tag.OBJECT_IDENTIFIER:
            raise SnmpDecodeError("varbind name is not an OID")
        _, s, e = _header(buf, s, i) if buf[s + 1] & 0x80 else (0, s + 2, s + 2 + buf[s + 1])
        # an overlong OID is caught below: then its value cannot end at i
        chunk = buf[s:e]
        oid = cached(chunk)
        if oid is None:
            oid = _oid(buf, s, e)
        tag = buf[e]
        _, s, e = _header(buf, e, i) if buf[e + 1] & 0x80 else (0, e + 2, e + 2 + buf[e + 1])
        if e != i:
            raise SnmpDecodeError("varbind value does not end its varbind")
        if 0x41 <= tag <= 0x43:  # Counter32, Gauge32, TimeTicks: _u32
            number = int.from_bytes(buf[s:e], "big")
            if s == e or number > _U32:
                raise SnmpDecodeError("empty or out-of-range 32-bit unsigned value")
            value: Value = number
        else:
            decode = values.get(tag)
            if decode is None:
                raise SnmpDecodeError(f"unknown value tag 0x{tag:02x}")
            value = decode(buf, s, e)
        append(_NEW(VarBind, (oid, tags[tag], value)))
    return tuple(out)


def _oid(buf: bytes, s: int, e: int) -> Oid:
    chunk = buf[s:e]
    oid = _OID_CACHE.get(chunk)
    if oid is None:
        oid = _parse_oid(chunk)
        if len(_OID_CACHE) >= _OID_CACHE_SIZE:
            _OID_CACHE.clear()
        _OID_CACHE[chunk] = oid
    return oid


def _parse_oid(chunk: bytes) -> Oid:
    if not chunk:
        raise SnmpDecodeError("empty OID")
    if max(chunk) < 0x80 and chunk[0] < 80:  # every sub-identifier one byte: most OIDs
        oid: Oid = _NEW(Oid, (chunk[0] // 40, chunk[0] % 40, *chunk[1:]))
        return oid
    first, *rest = _subidentifiers(chunk)
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    oid = _NEW(Oid, (*head, *rest))
    return oid


def _subidentifiers(chunk: bytes) -> list[int]:
    arcs: list[int] = []
    acc = 0
    for b in chunk:
        if acc == 0 and b == 0x80:
            raise SnmpDecodeError("non-minimal OID sub-identifier")
        acc = (acc << 7) | (b & 0x7F)
        if acc > _FIRST_SUBID_MAX:  # checked per byte: a long run would grow a huge int
            raise SnmpDecodeError("OID sub-identifier above 2^32-1")
        if b < 0x80:
            arcs.append(acc)
            acc = 0
    if chunk[-1] & 0x80:
        raise SnmpDecodeError("OID ends inside a sub-identifier")
    if len(arcs) > 1 and max(arcs[1:]) > _U32:
        raise SnmpDecodeError("OID sub-identifier above 2^32-1")
    return arcs


def _signed(buf: bytes, s: int, e: int) -> int:
    if s == e:
        raise SnmpDecodeError("empty INTEGER")
    return int.from_bytes(buf[s:e], "big", signed=True)


def _u32(buf: bytes, s: int, e: int) -> int:
    # Read as unsigned: agents that drop the leading 0x00 of values >= 2^31 still decode right.
    value = int.from_bytes(buf[s:e], "big")
    if s == e or value > _U32:
        raise SnmpDecodeError("empty or out-of-range 32-bit unsigned value")
    return value


def _u64(buf: bytes, s: int, e: int) -> int:
    value = int.from_bytes(buf[s:e], "big")
    if s == e or value > _U64:
        raise SnmpDecodeError("empty or out-of-range Counter64")
    return value


def _octets(buf: bytes, s: int, e: int) -> bytes:
    return buf[s:e]


def _ip_address(buf: bytes, s: int, e: int) -> str:
    if e - s != 4:
        raise SnmpDecodeError("IpAddress is not 4 octets")
    return "%d.%d.%d.%d" % tuple(buf[s:e])  # noqa: UP031 - fastest for four small ints


def _empty(buf: bytes, s: int, e: int) -> None:
    if s != e:
        raise SnmpDecodeError("NULL or exception value with content")


_VALUE: dict[int, Callable[[bytes, int, int], Value]] = {
    Tag.INTEGER: _signed,
    Tag.OCTET_STRING: _octets,
    Tag.NULL: _empty,
    Tag.OBJECT_IDENTIFIER: _oid,
    Tag.IP_ADDRESS: _ip_address,
    Tag.COUNTER32: _u32,
    Tag.GAUGE32: _u32,
    Tag.TIMETICKS: _u32,
    Tag.OPAQUE: _octets,
    Tag.COUNTER64: _u64,
    Tag.NO_SUCH_OBJECT: _empty,
    Tag.NO_SUCH_INSTANCE: _empty,
    Tag.END_OF_MIB_VIEW: _empty,
}


# ---------------------------------------------------------------- encoding


def encode_message(message: Message) -> bytes:
    """Encode a v1/v2c message; values that SNMP cannot carry raise `SnmpValueError`."""
    pdu = message.pdu
    body = _trap_v1_body(pdu) if isinstance(pdu, TrapV1Pdu) else _pdu_body(pdu)
    pdu_tag = PduType.TRAP_V1 if isinstance(pdu, TrapV1Pdu) else pdu.type
    content = (
        _tlv(Tag.INTEGER, _int_bytes(int(message.version)))
        + _tlv(Tag.OCTET_STRING, message.community)
        + _tlv(pdu_tag, body)
    )
    return _tlv(0x30, content)


def encode_request(
    version: Version,
    community: bytes,
    pdu_type: PduType,
    request_id: int,
    oids: Iterable[Sequence[int]],
    non_repeaters: int = 0,
    max_repetitions: int = 0,
) -> bytes:
    """Encode a Get, GetNext or GetBulk request for `oids` (values NULL)."""
    if pdu_type not in (PduType.GET, PduType.GET_NEXT, PduType.GET_BULK):
        raise SnmpValueError(f"{pdu_type.name} is not a request")
    if pdu_type is PduType.GET_BULK and version is Version.V1:
        raise SnmpValueError("GetBulk does not exist in SNMPv1")
    # Written from a cached template rather than through encode_message's Message and Pdu
    # objects: a walk asks every device of one model for the same OIDs, so only the request-id
    # (and the lengths, which depend on its size) differ between two requests.
    request = _int_bytes(request_id)
    oid_key = tuple(map(tuple, oids))
    head, tail = _request_template(
        version, community, pdu_type, oid_key, non_repeaters, max_repetitions, len(request)
    )
    return head + request + tail


@functools.lru_cache(maxsize=4096)
def _request_template(
    version: Version,
    community: bytes,
    pdu_type: PduType,
    oids: tuple[tuple[int, ...], ...],
    non_repeaters: int,
    max_repetitions: int,
    id_size: int,
) -> tuple[bytes, bytes]:
    """The request's bytes before and after its request-id's content of `id_size` bytes."""
    rest = (
        _tlv(Tag.INTEGER, _int_bytes(non_repeaters))
        + _tlv(Tag.INTEGER, _int_bytes(max_repetitions))
        + _varbind_list_bytes(VarBind(Oid(o), Tag.NULL, None) for o in oids)
    )
    placeholder = bytes(id_size)
    body = _tlv(Tag.INTEGER, placeholder) + rest
    content = (
        _tlv(Tag.INTEGER, _int_bytes(int(version)))
        + _tlv(Tag.OCTET_STRING, community)
        + _tlv(pdu_type, body)
    )
    whole = _tlv(0x30, content)
    cut = len(whole) - len(rest) - id_size
    return whole[:cut], whole[cut + id_size :]


def _pdu_body(pdu: Pdu) -> bytes:
    return (
        _tlv(Tag.INTEGER, _int_bytes(pdu.request_id))
        + _tlv(Tag.INTEGER, _int_bytes(pdu.error_status))
        + _tlv(Tag.INTEGER, _int_bytes(pdu.error_index))
        + _varbind_list_bytes(pdu.varbinds)
    )


def _trap_v1_body(pdu: TrapV1Pdu) -> bytes:
    return (
        _tlv(Tag.OBJECT_IDENTIFIER, _oid_bytes(pdu.enterprise))
        + _tlv(Tag.IP_ADDRESS, _ip_bytes(pdu.agent_addr))
        + _tlv(Tag.INTEGER, _int_bytes(pdu.generic_trap))
        + _tlv(Tag.INTEGER, _int_bytes(pdu.specific_trap))
        + _tlv(Tag.TIMETICKS, _int_bytes(_in_range(pdu.timestamp, _U32)))
        + _varbind_list_bytes(pdu.varbinds)
    )


def _varbind_list_bytes(varbinds: Iterable[VarBind]) -> bytes:
    items = b"".join(
        _tlv(0x30, _tlv(Tag.OBJECT_IDENTIFIER, _oid_bytes(vb.oid)) + _value_bytes(vb))
        for vb in varbinds
    )
    return _tlv(0x30, items)


def _value_bytes(vb: VarBind) -> bytes:
    tag, value = vb.tag, vb.value
    if tag in (Tag.NULL, Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW):
        content = b""
    elif tag in (Tag.OCTET_STRING, Tag.OPAQUE) and isinstance(value, bytes):
        content = value
    elif tag is Tag.OBJECT_IDENTIFIER and isinstance(value, tuple):
        content = _oid_bytes(value)
    elif tag is Tag.IP_ADDRESS and isinstance(value, str):
        content = _ip_bytes(value)
    elif isinstance(value, int) and not isinstance(value, bool) and tag in _INT_LIMITS:
        low, high = _INT_LIMITS[tag]
        if not low <= value <= high:
            raise SnmpValueError(f"{value} out of range for {tag.name}")
        content = _int_bytes(value)
    else:
        raise SnmpValueError(f"cannot encode {type(value).__name__} as {Tag(tag).name}")
    return _tlv(tag, content)


_INT_LIMITS = {
    Tag.INTEGER: (-0x80000000, 0x7FFFFFFF),
    Tag.COUNTER32: (0, _U32),
    Tag.GAUGE32: (0, _U32),
    Tag.TIMETICKS: (0, _U32),
    Tag.COUNTER64: (0, _U64),
}


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + content


def _int_bytes(value: int) -> bytes:
    # Minimal two's complement; unsigned types get their leading 0x00 the same way.
    return value.to_bytes((value + (value < 0)).bit_length() // 8 + 1, "big", signed=True)


def _in_range(value: int, high: int) -> int:
    if not 0 <= value <= high:
        raise SnmpValueError(f"{value} out of range 0..{high}")
    return value


def _oid_bytes(oid: Sequence[int]) -> bytes:
    valid_head = len(oid) >= 2 and 0 <= oid[0] <= 2 and (oid[0] == 2 or oid[1] < 40)
    if not valid_head or not all(0 <= arc <= _U32 for arc in oid[1:]):
        raise SnmpValueError(f"invalid OID {'.'.join(map(str, oid))!r}")
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        groups = []
        while arc:
            groups.append((arc & 0x7F) | 0x80)
            arc >>= 7
        groups[0] &= 0x7F
        out.extend(reversed(groups))
    return bytes(out)


def _ip_bytes(text: str) -> bytes:
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() and int(p) < 256 for p in parts):
        raise SnmpValueError(f"not an IPv4 address: {text!r}")
    return bytes(int(p) for p in parts)
