"""Our BER codec against pyasn1 (through pysnmp's v1/v2c message API) and real snmpd packets.

pyasn1 is the reference: whatever it encodes we must decode to the same values, whatever we
encode it must decode back. Malformed input may only ever raise SnmpDecodeError.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as asn1_decoder
from pyasn1.codec.ber import encoder as asn1_encoder
from pysnmp.proto.api import decodeMessageVersion, v1, v2c

from collector.snmp.ber import decode_message, encode_message, encode_request
from collector.snmp.errors import SnmpDecodeError, SnmpValueError
from collector.snmp.model import Message, Oid, Pdu, PduType, Tag, TrapV1Pdu, VarBind, Version

FIXTURES = json.loads(
    Path(__file__).with_name("fixtures").joinpath("snmpd_packets.json").read_text()
)
PACKETS = {name: [bytes.fromhex(h) for h in hexes] for name, hexes in FIXTURES["packets"].items()}
U32, U64 = 2**32 - 1, 2**64 - 1

# ------------------------------------------------------------------ pyasn1 <-> our types

V2_CLASSES = {
    Tag.INTEGER: v2c.Integer,
    Tag.OCTET_STRING: v2c.OctetString,
    Tag.NULL: v2c.Null,
    Tag.OBJECT_IDENTIFIER: v2c.ObjectIdentifier,
    Tag.IP_ADDRESS: v2c.IpAddress,
    Tag.COUNTER32: v2c.Counter32,
    Tag.GAUGE32: v2c.Gauge32,
    Tag.TIMETICKS: v2c.TimeTicks,
    Tag.OPAQUE: v2c.Opaque,
    Tag.COUNTER64: v2c.Counter64,
    Tag.NO_SUCH_OBJECT: v2c.NoSuchObject,
    Tag.NO_SUCH_INSTANCE: v2c.NoSuchInstance,
    Tag.END_OF_MIB_VIEW: v2c.EndOfMibView,
}
V1_CLASSES = {
    Tag.INTEGER: v1.Integer,
    Tag.OCTET_STRING: v1.OctetString,
    Tag.NULL: v1.Null,
    Tag.OBJECT_IDENTIFIER: v1.ObjectIdentifier,
    Tag.IP_ADDRESS: v1.IpAddress,
    Tag.COUNTER32: v1.Counter,
    Tag.GAUGE32: v1.Gauge,
    Tag.TIMETICKS: v1.TimeTicks,
    Tag.OPAQUE: v1.Opaque,
}
TAG_OF = {cls.tagSet: tag for tag, cls in V2_CLASSES.items()}
V2_PDUS = {
    PduType.GET: v2c.GetRequestPDU,
    PduType.GET_NEXT: v2c.GetNextRequestPDU,
    PduType.RESPONSE: v2c.ResponsePDU,
    PduType.SET: v2c.SetRequestPDU,
    PduType.GET_BULK: v2c.GetBulkRequestPDU,
    PduType.INFORM: v2c.InformRequestPDU,
    PduType.TRAP_V2: v2c.SNMPv2TrapPDU,
    PduType.REPORT: v2c.ReportPDU,
}
V1_PDUS = {
    PduType.GET: v1.GetRequestPDU,
    PduType.GET_NEXT: v1.GetNextRequestPDU,
    PduType.RESPONSE: v1.GetResponsePDU,
    PduType.SET: v1.SetRequestPDU,
}


def to_asn1_value(vb: VarBind, api: Any) -> Any:
    cls = (V1_CLASSES if api is v1 else V2_CLASSES)[vb.tag]
    if vb.value is None:
        return cls("") if vb.tag >= Tag.NO_SUCH_OBJECT else cls()
    if vb.tag is Tag.IP_ADDRESS:
        return cls(bytes(int(p) for p in str(vb.value).split(".")))
    return cls(vb.value)


def to_asn1(message: Message) -> bytes:
    """Encode `message` with pyasn1 through pysnmp's message API."""
    api = v1 if message.version is Version.V1 else v2c
    pdu_in = message.pdu
    if isinstance(pdu_in, TrapV1Pdu):
        pdu = v1.TrapPDU()
        v1.apiTrapPDU.set_defaults(pdu)
        v1.apiTrapPDU.set_enterprise(pdu, tuple(pdu_in.enterprise))
        v1.apiTrapPDU.set_agent_address(pdu, pdu_in.agent_addr)
        v1.apiTrapPDU.set_generic_trap(pdu, pdu_in.generic_trap)
        v1.apiTrapPDU.set_specific_trap(pdu, pdu_in.specific_trap)
        v1.apiTrapPDU.set_timestamp(pdu, pdu_in.timestamp)
        v1.apiTrapPDU.set_varbinds(
            pdu, [(tuple(vb.oid), to_asn1_value(vb, v1)) for vb in pdu_in.varbinds]
        )
    else:
        pdu = (V1_PDUS if api is v1 else V2_PDUS)[pdu_in.type]()
        api.apiPDU.set_defaults(pdu)
        api.apiPDU.set_request_id(pdu, pdu_in.request_id)
        if pdu_in.type is PduType.GET_BULK:
            v2c.apiBulkPDU.set_non_repeaters(pdu, pdu_in.error_status)
            v2c.apiBulkPDU.set_max_repetitions(pdu, pdu_in.error_index)
        else:
            api.apiPDU.set_error_status(pdu, pdu_in.error_status)
            api.apiPDU.set_error_index(pdu, pdu_in.error_index)
        api.apiPDU.set_varbinds(
            pdu, [(tuple(vb.oid), to_asn1_value(vb, api)) for vb in pdu_in.varbinds]
        )
    msg = api.Message()
    api.apiMessage.set_defaults(msg)
    api.apiMessage.set_community(msg, message.community)
    api.apiMessage.set_pdu(msg, pdu)
    return bytes(asn1_encoder.encode(msg))


def from_asn1_value(value: Any) -> tuple[Tag, Any]:
    tag = TAG_OF[value.tagSet]
    if tag in (Tag.NULL, Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW):
        return tag, None
    if tag is Tag.IP_ADDRESS:
        return tag, ".".join(str(b) for b in value.asOctets())
    if tag in (Tag.OCTET_STRING, Tag.OPAQUE):
        return tag, value.asOctets()
    if tag is Tag.OBJECT_IDENTIFIER:
        return tag, Oid(value)
    return tag, int(value)


def from_asn1(data: bytes) -> Message:
    """Decode `data` with pyasn1 and convert it to our types, for comparison."""
    version = int(decodeMessageVersion(data))
    api = v1 if version == 0 else v2c
    msg, rest = asn1_decoder.decode(data, asn1Spec=api.Message())
    assert not rest
    pdu = api.apiMessage.get_pdu(msg)
    is_trap = pdu.tagSet == v1.TrapPDU.tagSet
    pairs = (v1.apiTrapPDU if is_trap else api.apiPDU).get_varbinds(pdu)
    varbinds = tuple(VarBind(Oid(oid), *from_asn1_value(val)) for oid, val in pairs)
    community = api.apiMessage.get_community(msg).asOctets()
    if is_trap:
        t = v1.apiTrapPDU
        agent_addr = ".".join(str(b) for b in t.get_agent_address(pdu).asOctets())
        trap = TrapV1Pdu(
            Oid(t.get_enterprise(pdu)),
            agent_addr,
            int(t.get_generic_trap(pdu)),
            int(t.get_specific_trap(pdu)),
            int(t.get_timestamp(pdu)),
            varbinds,
        )
        return Message(Version(version), community, trap)
    kind = next(
        k for k, cls in (V1_PDUS if version == 0 else V2_PDUS).items() if cls.tagSet == pdu.tagSet
    )
    request_id, status, index = (int(pdu[i]) for i in range(3))  # named: Pdu is a dataclass
    return Message(Version(version), community, Pdu(kind, request_id, status, index, varbinds))


# ------------------------------------------------------------------ strategies

arcs = st.integers(0, U32)
oids = st.builds(
    lambda head, rest: Oid((*head, *rest)),
    st.one_of(
        st.tuples(st.integers(0, 1), st.integers(0, 39)),
        st.tuples(st.just(2), st.integers(0, 100_000)),
    ),
    st.lists(st.one_of(st.integers(0, 200), arcs), max_size=16),
)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
VALUES = {
    Tag.INTEGER: st.integers(-(2**31), 2**31 - 1),
    Tag.OCTET_STRING: st.binary(max_size=300),
    Tag.NULL: st.none(),
    Tag.OBJECT_IDENTIFIER: oids,
    Tag.IP_ADDRESS: ipv4,
    Tag.COUNTER32: st.integers(0, U32),
    Tag.GAUGE32: st.integers(0, U32),
    Tag.TIMETICKS: st.integers(0, U32),
    Tag.OPAQUE: st.binary(max_size=40),
    Tag.COUNTER64: st.integers(0, U64),
    Tag.NO_SUCH_OBJECT: st.none(),
    Tag.NO_SUCH_INSTANCE: st.none(),
    Tag.END_OF_MIB_VIEW: st.none(),
}


def varbinds(tags: list[Tag]) -> st.SearchStrategy[tuple[VarBind, ...]]:
    one = st.sampled_from(tags).flatmap(lambda t: st.builds(VarBind, oids, st.just(t), VALUES[t]))
    return st.lists(one, max_size=30).map(tuple)


request_ids = st.integers(-(2**31), 2**31 - 1)
v2_messages = st.builds(
    lambda kind, rid, status, index, vbs, community: Message(
        Version.V2C, community, Pdu(kind, rid, status, index, vbs)
    ),
    st.sampled_from(list(V2_PDUS)),
    request_ids,
    st.integers(0, 18),
    st.integers(0, 2**31 - 1),
    varbinds(list(VALUES)),
    st.binary(max_size=40),
)
v1_messages = st.builds(
    lambda kind, rid, status, index, vbs, community: Message(
        Version.V1, community, Pdu(kind, rid, status, index, vbs)
    ),
    st.sampled_from(list(V1_PDUS)),
    request_ids,
    st.integers(0, 5),
    st.integers(0, 2**31 - 1),
    varbinds(list(V1_CLASSES)),
    st.binary(max_size=40),
)
v1_traps = st.builds(
    lambda ent, addr, gen, spec, ts, vbs: Message(
        Version.V1, b"public", TrapV1Pdu(ent, addr, gen, spec, ts, vbs)
    ),
    oids,
    ipv4,
    st.integers(0, 6),
    st.integers(0, 2**31 - 1),
    st.integers(0, U32),
    varbinds(list(V1_CLASSES)),
)
messages = st.one_of(v2_messages, v1_messages, v1_traps)
FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ against pyasn1


@settings(max_examples=400, deadline=None)
@given(messages)
def test_what_pyasn1_encodes_we_decode_to_the_same_values(message: Message) -> None:
    assert decode_message(to_asn1(message)) == message


@settings(max_examples=400, deadline=None)
@given(messages)
def test_what_we_encode_pyasn1_decodes_to_the_same_values(message: Message) -> None:
    data = encode_message(message)
    assert from_asn1(data) == message  # (not byte-equal: pyasn1 writes -128 as ff 80)


@pytest.mark.parametrize("name", sorted(PACKETS))
def test_recorded_snmpd_packets_decode_like_pyasn1(name: str) -> None:
    for packet in PACKETS[name]:
        ours = decode_message(packet)
        assert ours == from_asn1(packet)
        assert decode_message(encode_message(ours)) == ours


# ------------------------------------------------------------------ recorded values


def test_recorded_iftable_walk_has_48_rows_of_22_columns() -> None:
    vbs = [vb for p in PACKETS["v2c_iftable_bulk25"] for vb in decode_message(p).pdu.varbinds]
    table = [vb for vb in vbs if vb.oid.startswith(Oid.parse("1.3.6.1.2.1.2.2.1"))]
    assert len(table) == 48 * 22
    assert {vb.oid[10] for vb in table} == set(range(1, 49))
    descr = {vb.oid[10]: vb.value for vb in table if vb.oid[9] == 2}
    assert descr[1] == b"lo" and b"uplink" in descr.values()
    assert {vb.tag for vb in table if vb.oid[9] == 10} == {Tag.COUNTER32}


def test_recorded_system_group_and_exceptions() -> None:
    [system] = PACKETS["v2c_get_system"]
    pdu = decode_message(system).pdu
    assert isinstance(pdu, Pdu) and pdu.type is PduType.RESPONSE
    assert pdu.varbinds[0].value == FIXTURES["sysDescr"].encode()
    assert pdu.varbinds[2].tag is Tag.TIMETICKS
    tags = [vb.tag for vb in decode_message(PACKETS["v2c_get_no_such"][0]).pdu.varbinds]
    assert tags == [Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE]
    v1_error = decode_message(PACKETS["v1_no_such_name"][0]).pdu
    assert isinstance(v1_error, Pdu) and (v1_error.error_status, v1_error.error_index) == (2, 1)


def test_recorded_traps() -> None:
    trap = decode_message(PACKETS["v1_trap_link_down"][0]).pdu
    assert isinstance(trap, TrapV1Pdu)
    assert (trap.generic_trap, trap.agent_addr, trap.timestamp) == (2, "127.0.0.1", 4200)
    inform = decode_message(PACKETS["v2c_inform_cold_start"][0]).pdu
    assert isinstance(inform, Pdu) and inform.type is PduType.INFORM
    assert inform.varbinds[1].value == Oid.parse("1.3.6.1.6.3.1.1.5.1")


# ------------------------------------------------------------------ malformed input


def decodes_or_rejects(data: bytes) -> None:
    with contextlib.suppress(SnmpDecodeError):
        decode_message(data)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_every_truncation_is_rejected(message: Message) -> None:
    data = encode_message(message)
    for cut in range(len(data)):
        with pytest.raises(SnmpDecodeError):
            decode_message(data[:cut])


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    decodes_or_rejects(data)
    decodes_or_rejects(b"\x30" + data)


@settings(max_examples=500, deadline=None)
@given(messages, st.randoms(use_true_random=False))
def test_corrupted_messages_raise_only_decode_error(message: Message, rnd: random.Random) -> None:
    # 20 corruptions per generated message: generating messages costs far more than decoding.
    original = encode_message(message)
    for _ in range(20):
        data = bytearray(original)
        for _ in range(rnd.randint(1, 4)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        decodes_or_rejects(bytes(data))


def tlv(tag: int, content: bytes) -> bytes:
    assert len(content) < 128
    return bytes((tag, len(content))) + content


def message_bytes(varbind: bytes, version: int = 1, pdu_tag: int = 0xA2) -> bytes:
    header = b"\x02\x01\x07\x02\x01\x00\x02\x01\x00"
    pdu = tlv(pdu_tag, header + tlv(0x30, tlv(0x30, varbind)))
    return tlv(0x30, tlv(0x02, bytes([version])) + tlv(0x04, b"public") + pdu)


GOOD_VARBIND = bytes.fromhex("06032b0601") + bytes.fromhex("4104ffffffff")


MALFORMED = [
    (b"", "index out of range"),
    (b"\x30\x80" + message_bytes(GOOD_VARBIND)[2:] + b"\x00\x00", "indefinite"),
    (b"\x30\x85\x00\x00\x00\x00\x10", "oversized"),
    (message_bytes(GOOD_VARBIND) + b"\x00", "not one SNMP message"),
    (message_bytes(GOOD_VARBIND)[:-1], "truncated"),
    (message_bytes(GOOD_VARBIND, version=3), "not a v1/v2c message"),
    (message_bytes(GOOD_VARBIND, pdu_tag=0xA4), "not allowed in version 1"),
    (message_bytes(GOOD_VARBIND, version=0, pdu_tag=0xA5), "not allowed in version 0"),
    (message_bytes(bytes.fromhex("06042b0680010500")), "non-minimal"),
    (message_bytes(bytes.fromhex("06022b860500")), "ends inside a sub-identifier"),
    (message_bytes(bytes.fromhex("06000500")), "empty OID"),
    (message_bytes(bytes.fromhex("06022b0641050100000000")), "out-of-range"),
    (message_bytes(bytes.fromhex("06022b064003010203")), "IpAddress"),
    (message_bytes(bytes.fromhex("06022b060200")), "empty INTEGER"),
    (message_bytes(bytes.fromhex("06022b06050100")), "NULL or exception value with content"),
    (message_bytes(bytes.fromhex("06022b06470100")), "unknown value tag"),
    (message_bytes(GOOD_VARBIND + b"\x05\x00"), "does not end its varbind"),
    (message_bytes(bytes.fromhex("04022b060500")), "name is not an OID"),
]


@pytest.mark.parametrize(("data", "reason"), MALFORMED, ids=[r for _, r in MALFORMED])
def test_known_malformed_packets_are_rejected_for_their_reason(data: bytes, reason: str) -> None:
    assert decode_message(message_bytes(GOOD_VARBIND)).pdu.varbinds[0].value == 2**32 - 1
    with pytest.raises(SnmpDecodeError, match=reason):
        decode_message(data)


def test_a_huge_sub_identifier_is_rejected_without_bigint_work() -> None:
    oid = b"\x2b" + b"\xff" * 60_000 + b"\x01"
    vb = (
        b"\x30\x83"
        + (len(oid) + 6).to_bytes(3, "big")
        + b"\x06\x83"
        + len(oid).to_bytes(3, "big")
        + oid
        + b"\x05\x00"
    )
    pdu = b"\x02\x01\x01\x02\x01\x00\x02\x01\x00\x30\x83" + len(vb).to_bytes(3, "big") + vb
    msg = b"\x02\x01\x01\x04\x01p\xa2\x83" + len(pdu).to_bytes(3, "big") + pdu
    started = time.monotonic()
    with pytest.raises(SnmpDecodeError):
        decode_message(b"\x30\x83" + len(msg).to_bytes(3, "big") + msg)
    assert time.monotonic() - started < 1.0


# ------------------------------------------------------------------ OIDs and encoding errors


@given(oids)
def test_oid_text_round_trip(oid: Oid) -> None:
    assert Oid.parse(str(oid)) == oid
    assert Oid.parse("." + str(oid)) == oid


@pytest.mark.parametrize("text", ["", "1..3", "1.3.x", "1.-3", " 1 . 3", "1.3.٣"])
def test_bad_oid_text_is_a_value_error(text: str) -> None:
    with pytest.raises(SnmpValueError):
        Oid.parse(text)


@pytest.mark.parametrize(
    "vb",
    [
        VarBind(Oid((1,)), Tag.NULL, None),
        VarBind(Oid((3, 1)), Tag.NULL, None),
        VarBind(Oid((1, 40)), Tag.NULL, None),
        VarBind(Oid((1, 3, 2**32)), Tag.NULL, None),
        VarBind(Oid((1, 3)), Tag.COUNTER32, -1),
        VarBind(Oid((1, 3)), Tag.INTEGER, 2**31),
        VarBind(Oid((1, 3)), Tag.COUNTER64, 2**64),
        VarBind(Oid((1, 3)), Tag.IP_ADDRESS, "1.2.3"),
        VarBind(Oid((1, 3)), Tag.OCTET_STRING, "text, not bytes"),
        VarBind(Oid((1, 3)), Tag.INTEGER, True),
    ],
)
def test_unencodable_varbinds_raise_value_error(vb: VarBind) -> None:
    with pytest.raises(SnmpValueError):
        encode_message(Message(Version.V2C, b"c", Pdu(PduType.SET, 1, 0, 0, (vb,))))


def test_get_bulk_request_carries_its_parameters() -> None:
    data = encode_request(
        Version.V2C, b"c", PduType.GET_BULK, 9, [Oid.parse("1.3.6.1.2.1.2.2")], 0, 25
    )
    assert from_asn1(data).pdu == Pdu(
        PduType.GET_BULK, 9, 0, 25, (VarBind(Oid.parse("1.3.6.1.2.1.2.2"), Tag.NULL, None),)
    )
    with pytest.raises(SnmpValueError):
        encode_request(Version.V1, b"c", PduType.GET_BULK, 9, [Oid.parse("1.3")], 0, 25)


@given(
    request_id=st.integers(0, 2**31 - 1),
    community=st.binary(max_size=300),
    oids=st.lists(
        st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=20).map(
            lambda rest: Oid((1, 3, *rest))
        ),
        min_size=1,
        max_size=30,
    ),
    kind=st.sampled_from([PduType.GET, PduType.GET_NEXT, PduType.GET_BULK]),
    repetitions=st.integers(0, 2**31 - 1),
)
def test_requests_from_the_template_equal_the_message_encoder(
    request_id: int, community: bytes, oids: list[Oid], kind: PduType, repetitions: int
) -> None:
    """The request template (cached per OIDs and id size) writes what encode_message writes."""
    reps = repetitions if kind is PduType.GET_BULK else 0
    varbinds = tuple(VarBind(o, Tag.NULL, None) for o in oids)
    expected = encode_message(
        Message(Version.V2C, community, Pdu(kind, request_id, 0, reps, varbinds))
    )
    assert encode_request(Version.V2C, community, kind, request_id, oids, 0, reps) == expected
