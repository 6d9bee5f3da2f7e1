"""The trap receiver fed recorded net-snmp packets and synthesized ones, with a fixed clock.

Packets go straight to `datagram_received`; answers land in a fake transport. Recorded v1/v2c
traps come from snmpd_packets.json, v3 ones from traps_v3_packets.json (see the recording
scripts beside them).
"""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.type.univ import OctetString
from pysnmp.proto.secmod.rfc3414.auth import hmacsha

from agent.model import Event
from collector.snmp.ber import decode_message, encode_message
from collector.snmp.model import Message, Oid, Pdu, PduType, Tag, TrapV1Pdu, VarBind, Version
from collector.snmp.trap_config import TrapConfig
from collector.snmp.trap_usm import (
    AUTH,
    FLAG_AUTH,
    FLAG_PRIV,
    FLAG_REPORTABLE,
    Header,
    LocalUser,
    encode_v3,
    extend_priv_key,
    localize,
    parse_message,
    parse_scoped_pdu,
    password_to_key,
    scoped_pdu,
)
from collector.snmp.traps import SNMP_TRAP_OID, SYS_UPTIME, TrapReceiver, text

FIXTURES = Path(__file__).with_name("fixtures")
V2 = json.loads((FIXTURES / "snmpd_packets.json").read_text())
V3 = json.loads((FIXTURES / "traps_v3_packets.json").read_text())
PACKETS = {n: bytes.fromhex(h[0]) for n, h in V2["packets"].items() if "trap" in n or "inform" in n}
V3_PACKETS = {n: bytes.fromhex(h) for n, h in V3["packets"].items()}
COMMUNITY = V2["community"]
SENDER_ENGINE = bytes.fromhex(V3["engine_id"])
OUR_ENGINE = bytes.fromhex("80000000050102030405")
NOW = 1_700_000_000.0
SOURCE = ("127.0.0.1", 40000)
LINK_DOWN = Oid.parse("1.3.6.1.6.3.1.1.5.3")


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 16200)


def _users() -> list[dict[str, Any]]:
    users = []
    for case in V3["cases"].values():
        user: dict[str, Any] = {"name": case["user"], "engine_id": V3["engine_id"]}
        if case["auth"]:
            user |= {"auth_protocol": case["auth"], "auth_key": V3["auth_key"]}
        if case["priv"]:
            user |= {"priv_protocol": case["priv"], "priv_key": V3["priv_key"]}
        users.append(user)
    return users


CONFIG = {
    "enabled": True,
    "listen": "127.0.0.1:0",
    "communities": ["other", COMMUNITY],
    "engine_id": OUR_ENGINE.hex(),
    "users": _users(),
    "devices": {"127.0.0.1": "core-sw1"},
    "mappings": [
        {"oid": "1.3.6.1.4.1.9.9.43.2.0.1", "name": "ciscoConfigManEvent",
         "labels": {"command_source": "1.3.6.1.4.1.9.9.43.1.1.6.1.3"}},
    ],
}  # fmt: skip


def receiver(**overrides: Any) -> tuple[TrapReceiver, list[Event], FakeTransport]:
    events: list[Event] = []
    config = TrapConfig.model_validate(CONFIG | overrides)
    rx = TrapReceiver(config, events.append, clock=lambda: NOW, monotonic=lambda: 500.0)
    transport = FakeTransport()
    rx.connection_made(transport)  # type: ignore[arg-type]
    return rx, events, transport


def v2_trap(trap_oid: Oid, *varbinds: VarBind, pdu: PduType = PduType.TRAP_V2) -> bytes:
    head = (VarBind(SYS_UPTIME, Tag.TIMETICKS, 42),
            VarBind(SNMP_TRAP_OID, Tag.OBJECT_IDENTIFIER, trap_oid))  # fmt: skip
    body = Pdu(pdu, 7, 0, 0, head + varbinds)
    return encode_message(Message(Version.V2C, COMMUNITY.encode(), body))


def v1_trap(generic: int, specific: int = 0, enterprise: str = "1.3.6.1.4.1.9") -> bytes:
    pdu = TrapV1Pdu(Oid.parse(enterprise), "10.0.0.9", generic, specific, 42, ())
    return encode_message(Message(Version.V1, COMMUNITY.encode(), pdu))


def labels(event: Event) -> dict[str, str]:
    return dict(event.labels)


# ---------------------------------------------------------------- v1 and v2c


@pytest.mark.parametrize("name", ["v1_trap_link_down", "v2c_trap_link_down"])
def test_recorded_link_down_becomes_an_event_with_interface_labels(name: str) -> None:
    rx, events, _ = receiver()
    rx.datagram_received(PACKETS[name], SOURCE)
    [event] = events
    assert event.name == "linkDown"
    assert labels(event) == {"target": "core-sw1", "trap": "linkDown", "ifIndex": "3",
                             "ifDescr": "ge0-1"}  # fmt: skip
    assert dict(event.fields)["1.3.6.1.2.1.1.3.0"] == "4200"
    assert (event.timestamp, event.source) == (NOW, "snmp_trap")
    version = "1" if name.startswith("v1") else "2c"
    assert rx.received == {(version, "linkDown"): 1}


def test_v1_trap_carries_agent_address_and_enterprise_as_rfc3584_varbinds() -> None:
    rx, events, _ = receiver()
    rx.datagram_received(v1_trap(0), SOURCE)
    fields = dict(events[0].fields)
    assert events[0].name == "coldStart"
    assert fields["1.3.6.1.6.3.18.1.3.0"] == "10.0.0.9"
    assert fields["1.3.6.1.6.3.1.1.4.3.0"] == "1.3.6.1.4.1.9"


@pytest.mark.parametrize(
    ("generic", "name"),
    [(0, "coldStart"), (1, "warmStart"), (2, "linkDown"), (3, "linkUp"),
     (4, "authenticationFailure")],
)  # fmt: skip
def test_v1_generic_traps_have_their_standard_names(generic: int, name: str) -> None:
    rx, events, _ = receiver()
    rx.datagram_received(v1_trap(generic), SOURCE)
    assert events[0].name == name
    assert rx.received == {("1", name): 1}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_v2_standard_trap_oids_have_their_standard_names(n: int) -> None:
    rx, events, _ = receiver()
    rx.datagram_received(v2_trap(Oid((1, 3, 6, 1, 6, 3, 1, 1, 5, n))), SOURCE)
    names = ["coldStart", "warmStart", "linkDown", "linkUp", "authenticationFailure"]
    assert events[0].name == names[n - 1]


def test_recorded_inform_is_acknowledged_with_a_response() -> None:
    rx, events, transport = receiver()
    rx.datagram_received(PACKETS["v2c_inform_cold_start"], SOURCE)
    assert events[0].name == "coldStart"
    [(answer, addr)] = transport.sent
    request = decode_message(PACKETS["v2c_inform_cold_start"])
    response = decode_message(answer)
    assert addr == SOURCE and response.community == COMMUNITY.encode()
    assert isinstance(response.pdu, Pdu) and isinstance(request.pdu, Pdu)
    assert response.pdu.type is PduType.RESPONSE
    assert response.pdu.request_id == request.pdu.request_id
    assert response.pdu.varbinds == request.pdu.varbinds
    assert rx.informs_acknowledged == 1


def test_unknown_community_is_counted_dropped_and_never_answered() -> None:
    rx, events, transport = receiver(communities=["something-else"])
    for name in PACKETS:
        rx.datagram_received(PACKETS[name], SOURCE)
    assert events == [] and transport.sent == []
    assert rx.dropped == {"unknown_community": 3}


def test_unknown_source_keeps_its_ip_as_target() -> None:
    rx, events, _ = receiver()
    rx.datagram_received(PACKETS["v2c_trap_link_down"], ("192.0.2.7", 162))
    assert labels(events[0])["target"] == "192.0.2.7"


def test_if_index_comes_from_any_if_table_column_and_if_name_from_ifxtable() -> None:
    rx, events, _ = receiver()
    packet = v2_trap(
        Oid.parse("1.3.6.1.6.3.1.1.5.4"),
        VarBind(Oid.parse("1.3.6.1.2.1.2.2.1.8.12"), Tag.INTEGER, 1),
        VarBind(Oid.parse("1.3.6.1.2.1.31.1.1.1.1.12"), Tag.OCTET_STRING, b"Gi0/12"),
    )
    rx.datagram_received(packet, SOURCE)
    assert labels(events[0]) == {"target": "core-sw1", "trap": "linkUp", "ifIndex": "12",
                                 "ifName": "Gi0/12"}  # fmt: skip
    assert dict(events[0].fields) == {"1.3.6.1.2.1.1.3.0": "42", "1.3.6.1.2.1.2.2.1.8.12": "1"}


def test_mapped_enterprise_trap_gets_its_name_and_labels() -> None:
    rx, events, _ = receiver()
    source = VarBind(Oid.parse("1.3.6.1.4.1.9.9.43.1.1.6.1.3.55"), Tag.INTEGER, 2)
    rx.datagram_received(v2_trap(Oid.parse("1.3.6.1.4.1.9.9.43.2.0.1"), source), SOURCE)
    assert events[0].name == "ciscoConfigManEvent"
    assert labels(events[0])["command_source"] == "2"
    assert rx.received == {("2c", "ciscoConfigManEvent"): 1}


def test_mapping_applies_to_v1_enterprise_specific_traps_too() -> None:
    rx, events, _ = receiver()
    rx.datagram_received(v1_trap(6, 1, enterprise="1.3.6.1.4.1.9.9.43.2"), SOURCE)
    assert events[0].name == "ciscoConfigManEvent"


def test_unmapped_trap_is_named_by_oid_but_counted_as_unmapped() -> None:
    rx, events, _ = receiver()
    rx.datagram_received(v2_trap(Oid.parse("1.3.6.1.4.1.99999.1")), SOURCE)
    assert events[0].name == "1.3.6.1.4.1.99999.1"
    assert rx.received == {("2c", "unmapped"): 1}  # one series, whatever OIDs arrive


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (encode_message(Message(Version.V2C, COMMUNITY.encode(),
                                Pdu(PduType.TRAP_V2, 1, 0, 0, ()))), "missing_trap_oid"),
        (encode_message(Message(Version.V2C, COMMUNITY.encode(),
                                Pdu(PduType.GET, 1, 0, 0, ()))), "unexpected_pdu"),
        (v1_trap(7), "bad_generic_trap"),
        (b"", "not_snmp"),
        (b"GET / HTTP/1.1\r\n", "not_snmp"),
        (b"\x30\x10\x02\x01\x01", "truncated"),
        (b"\x30\x03\x02\x01\x02", "unsupported_version"),
        (b"\x30\x03\x02\x01\x01", "malformed"),
    ],
)  # fmt: skip
def test_bad_packets_are_dropped_for_their_reason(packet: bytes, reason: str) -> None:
    rx, events, _ = receiver()
    rx.datagram_received(packet, SOURCE)
    assert events == [] and rx.dropped == {reason: 1}


def test_untrusted_values_are_text_and_bounded() -> None:
    assert text(VarBind(Oid.parse("1.3"), Tag.OCTET_STRING, b"\x00\xffbin")) == "0x00ff62696e"
    assert text(VarBind(Oid.parse("1.3"), Tag.OCTET_STRING, b"{{ lookup('pipe','id') }}")) == (
        "{{ lookup('pipe','id') }}"
    )  # kept verbatim as data: nothing downstream may template it
    assert len(text(VarBind(Oid.parse("1.3"), Tag.OCTET_STRING, b"x" * 5000))) == 1024
    assert text(VarBind(Oid.parse("1.3"), Tag.NO_SUCH_OBJECT, None)) == "NO_SUCH_OBJECT"


def test_a_bug_while_handling_one_packet_is_counted_and_the_next_is_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rx, events, transport = receiver()
    with monkeypatch.context() as patch:
        patch.setattr(rx, "to_event", lambda n: 1 / 0)
        rx.datagram_received(PACKETS["v2c_inform_cold_start"], SOURCE)
    assert rx.dropped == {"internal_error": 1} and transport.sent == []  # not acknowledged
    rx.datagram_received(PACKETS["v2c_inform_cold_start"], SOURCE)
    assert len(events) == 1 and len(transport.sent) == 1


def test_samples_carry_the_counters() -> None:
    rx, _, _ = receiver()
    rx.datagram_received(PACKETS["v2c_inform_cold_start"], SOURCE)
    rx.datagram_received(b"junk", SOURCE)
    got = {(s.name, s.labels): s.value for s in rx.samples(NOW)}
    assert got == {
        ("opswatch_snmp_traps_received_total", (("trap", "coldStart"), ("version", "2c"))): 1.0,
        ("opswatch_snmp_traps_dropped_total", (("reason", "not_snmp"),)): 1.0,
        ("opswatch_snmp_informs_acknowledged_total", ()): 1.0,
    }
    assert {s.timestamp for s in rx.samples(NOW)} == {NOW}


# ---------------------------------------------------------------- v3


@pytest.mark.parametrize("case", sorted(V3["cases"]))
def test_recorded_v3_traps_authenticate_decrypt_and_become_events(case: str) -> None:
    rx, events, transport = receiver()
    rx.datagram_received(V3_PACKETS[case], SOURCE)
    assert rx.dropped == {}
    [event] = events
    assert event.name == "linkDown"
    assert labels(event) == {"target": "core-sw1", "trap": "linkDown", "ifIndex": "7",
                             "ifName": "Gi0/7"}  # fmt: skip
    assert rx.received == {("3", "linkDown"): 1} and transport.sent == []


def test_v3_trap_with_a_wrong_key_is_dropped_as_wrong_digest() -> None:
    rx, events, transport = receiver()
    rx.datagram_received(V3_PACKETS["sha_aes_wrong_key"], SOURCE)
    assert events == [] and transport.sent == []
    assert rx.dropped == {"wrong_digest": 1}


def test_v3_trap_from_an_unknown_engine_or_user_is_dropped() -> None:
    rx, events, _ = receiver(users=[{**_users()[0], "engine_id": "8000000001999999"}])
    rx.datagram_received(V3_PACKETS["sha_aes"], SOURCE)
    rx2, _, _ = receiver(users=[{**_users()[0], "name": "someone-else"}])
    rx2.datagram_received(V3_PACKETS["sha_aes"], SOURCE)
    assert events == []
    assert rx.dropped == {"unknown_engine_id": 1} and rx2.dropped == {"unknown_user": 1}


def test_v3_trap_below_the_users_security_level_is_dropped() -> None:
    users = [{**u, "name": "u-none"} for u in _users() if u["name"] == "u-sha-aes"]
    rx, events, _ = receiver(users=users)
    rx.datagram_received(V3_PACKETS["no_auth"], SOURCE)
    assert events == [] and rx.dropped == {"unsupported_security_level": 1}


def test_inform_discovery_probe_gets_a_report_with_our_engine_id() -> None:
    rx, events, transport = receiver()
    rx.datagram_received(V3_PACKETS["inform_probe"], SOURCE)
    [(answer, addr)] = transport.sent
    report = parse_message(answer)
    probe = parse_message(V3_PACKETS["inform_probe"])
    assert addr == SOURCE and events == [] and rx.dropped == {}
    assert (report.engine_id, report.msg_id, report.flags) == (OUR_ENGINE, probe.msg_id, 0)
    assert report.boots == int(NOW) and report.engine_time == 0
    _, _, pdu = parse_scoped_pdu(report.data)
    assert pdu.type is PduType.REPORT
    assert pdu.varbinds[0].oid == Oid.parse("1.3.6.1.6.3.15.1.1.4.0")  # usmStatsUnknownEngineIDs
    assert rx.reports == {"discovery": 1}


def test_a_probe_that_asks_no_answer_is_dropped_unanswered() -> None:
    rx, _, transport = receiver()
    probe = bytearray(V3_PACKETS["inform_probe"])
    flags_at = bytes(probe).index(b"\x04\x01\x04") + 2  # msgFlags OCTET STRING of one byte
    probe[flags_at] = 0
    rx.datagram_received(bytes(probe), SOURCE)
    assert transport.sent == [] and rx.dropped == {"unknown_engine_id": 1}


def local_user(auth: str, priv: str | None, engine: bytes) -> LocalUser:
    hash_name = AUTH[auth][0]
    auth_key = localize(password_to_key(b"trap-auth-key", hash_name), engine, hash_name)
    priv_key = b""
    if priv:
        kul = localize(password_to_key(b"trap-priv-key", hash_name), engine, hash_name)
        priv_key = extend_priv_key(priv, kul, engine, hash_name)
    return LocalUser(b"u-sha-aes", auth, priv, auth_key, priv_key)


def inform(
    boots: int = int(NOW), engine_time: int = 0, flags: int = FLAG_AUTH | FLAG_PRIV
) -> bytes:
    pdu = Pdu(PduType.INFORM, 99, 0, 0, (
        VarBind(SYS_UPTIME, Tag.TIMETICKS, 42),
        VarBind(SNMP_TRAP_OID, Tag.OBJECT_IDENTIFIER, LINK_DOWN),
        VarBind(Oid.parse("1.3.6.1.2.1.2.2.1.1.9"), Tag.INTEGER, 9)))  # fmt: skip
    header = Header(OUR_ENGINE, boots, engine_time, 4711, flags | FLAG_REPORTABLE)
    user = local_user("sha", "aes", OUR_ENGINE)
    return encode_v3(header, b"u-sha-aes", user, scoped_pdu(OUR_ENGINE, b"", pdu))


def test_v3_inform_is_acknowledged_encrypted_with_our_engine_id() -> None:
    rx, events, transport = receiver()
    rx.datagram_received(inform(), SOURCE)
    assert labels(events[0])["ifIndex"] == "9"
    [(answer, _)] = transport.sent
    response = parse_message(answer)
    assert (response.engine_id, response.msg_id) == (OUR_ENGINE, 4711)
    assert response.flags == FLAG_AUTH | FLAG_PRIV
    rx.datagram_received(answer, SOURCE)  # our own answer verifies under the same user
    assert rx.dropped == {"unexpected_pdu": 1}
    assert rx.informs_acknowledged == 1 and rx.received == {("3", "linkDown"): 1}


@pytest.mark.parametrize(("boots", "engine_time"), [(1, 0), (int(NOW), 400)])
def test_v3_inform_outside_our_time_window_gets_an_authenticated_report(
    boots: int, engine_time: int
) -> None:
    rx, events, transport = receiver()
    rx.datagram_received(inform(boots, engine_time), SOURCE)
    assert events == [] and rx.dropped == {"not_in_time_window": 1}
    report = parse_message(transport.sent[0][0])
    assert report.flags == FLAG_AUTH  # RFC 3414: authNoPriv, so the sender may trust our clock
    pdu = parse_scoped_pdu(report.data)[2]
    assert pdu.varbinds[0].oid == Oid.parse("1.3.6.1.6.3.15.1.1.2.0")


def sender_trap(boots: int, engine_time: int) -> bytes:
    pdu = Pdu(PduType.TRAP_V2, 5, 0, 0, (
        VarBind(SYS_UPTIME, Tag.TIMETICKS, 42),
        VarBind(SNMP_TRAP_OID, Tag.OBJECT_IDENTIFIER, LINK_DOWN)))  # fmt: skip
    header = Header(SENDER_ENGINE, boots, engine_time, 1, FLAG_AUTH | FLAG_PRIV)
    user = local_user("sha", "aes", SENDER_ENGINE)
    return encode_v3(header, b"u-sha-aes", user, scoped_pdu(SENDER_ENGINE, b"", pdu))


def test_v3_trap_replayed_from_an_earlier_boot_is_refused() -> None:
    rx, events, _ = receiver()
    rx.datagram_received(sender_trap(5, 100), SOURCE)
    rx.datagram_received(sender_trap(5, 100), SOURCE)  # a resend within the window is fine
    rx.datagram_received(sender_trap(4, 100_000), SOURCE)
    assert len(events) == 2 and rx.dropped == {"not_in_time_window": 1}


def test_key_localization_and_extension_match_pysnmp() -> None:
    from pysnmp.proto.secmod.eso.priv import aes256  # after hmacsha: pysnmp's import cycle

    ku = password_to_key(b"trap-priv-key", "sha1")
    for ours, theirs in (("aes-256", aes256.AesBlumenthal256()), ("aes-256c", aes256.Aes256())):
        expected = theirs.localize_key(hmacsha.HmacSha.SERVICE_ID, ku, OctetString(SENDER_ENGINE))
        assert extend_priv_key(ours, localize(ku, SENDER_ENGINE, "sha1"), SENDER_ENGINE,
                               "sha1") == bytes(expected)  # fmt: skip


# ---------------------------------------------------------------- fuzz


@functools.cache
def corpus() -> list[bytes]:
    return [*PACKETS.values(), *V3_PACKETS.values(), inform()]


FUZZ_RX = receiver()[0]  # one receiver for every example: building one localizes 12 keys


def accounted(rx: TrapReceiver) -> int:
    return sum(rx.received.values()) + sum(rx.dropped.values()) + rx.reports["discovery"]


def test_thousands_of_truncated_and_corrupted_packets_leave_the_receiver_serving() -> None:
    rnd = random.Random(20240603)
    rx, events, _ = receiver()
    packets = [p[:n] for p in corpus() for n in range(len(p))]  # every truncation
    for _ in range(3000):
        p = bytearray(rnd.choice(corpus()))
        for _ in range(rnd.randint(1, 4)):
            p[rnd.randrange(len(p))] = rnd.randrange(256)
        packets.append(bytes(p))
    packets += [rnd.randbytes(rnd.randint(0, 300)) for _ in range(2000)]
    for packet in packets:
        rx.datagram_received(packet, SOURCE)
    assert len(packets) > 6000
    assert accounted(rx) == len(packets) and rx.dropped["internal_error"] == 0
    before = len(events)
    rx.datagram_received(PACKETS["v2c_trap_link_down"], SOURCE)
    assert len(events) == before + 1


def _spliced(packet: bytes) -> st.SearchStrategy[bytes]:
    cut = st.integers(0, len(packet))
    return st.builds(lambda n, tail: packet[:n] + tail, cut, st.binary(max_size=8))


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200) | st.sampled_from(corpus()).flatmap(_spliced))
def test_arbitrary_bytes_are_accounted_for_exactly_once(data: bytes) -> None:
    before = accounted(FUZZ_RX)
    FUZZ_RX.datagram_received(data, SOURCE)
    assert accounted(FUZZ_RX) == before + 1 and FUZZ_RX.dropped["internal_error"] == 0
