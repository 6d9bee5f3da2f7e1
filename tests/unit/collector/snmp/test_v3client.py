"""Answers our own SNMPv3 path accepts, and the ones it drops or hands to pysnmp."""

from __future__ import annotations

import pytest

from collector.snmp import v3client
from collector.snmp.model import Oid, Pdu, PduType, Tag, VarBind
from collector.snmp.trap_usm import (
    FLAG_AUTH,
    FLAG_PRIV,
    Header,
    LocalUser,
    encode_v3,
    parse_message,
    scoped_pdu,
)
from collector.snmp.v3model import UsmUser

ENGINE = bytes.fromhex("80001f8880aabbccdd")
SYS_NAME = VarBind(Oid.parse("1.3.6.1.2.1.1.5.0"), Tag.OCTET_STRING, b"core1")


def local_user(priv: str = "aes-256") -> LocalUser:
    client = v3client.FastUsmClient(lambda: None)  # type: ignore[arg-type, return-value]
    user = UsmUser("ops", "sha256", "auth-passphrase", "aes256", "priv-passphrase")
    found = client._localized(user, ENGINE)
    assert (found.auth, found.priv) == ("sha-256", priv)
    return found


def answer(user: LocalUser | None, flags: int, pdu_type: PduType = PduType.RESPONSE) -> bytes:
    scoped = scoped_pdu(ENGINE, b"", Pdu(pdu_type, 42, 0, 0, (SYS_NAME,)))
    return encode_v3(Header(ENGINE, 3, 1000, 42, flags), b"ops", user, scoped)


def test_an_authentic_encrypted_answer_opens_to_its_pdu() -> None:
    user = local_user()
    pdu = v3client._open(parse_message(answer(user, FLAG_AUTH | FLAG_PRIV)), user)
    assert (pdu.type, pdu.request_id, pdu.varbinds) == (PduType.RESPONSE, 42, (SYS_NAME,))


@pytest.mark.parametrize("offset", [-1, -20, 60])
def test_a_changed_byte_fails_the_digest(offset: int) -> None:
    user = local_user()
    raw = bytearray(answer(user, FLAG_AUTH | FLAG_PRIV))
    raw[offset] ^= 0x01
    with pytest.raises(v3client._NoAnswer):
        v3client._open(parse_message(bytes(raw)), user)


def test_an_answer_signed_with_other_keys_is_refused() -> None:
    other = LocalUser(b"ops", "sha-256", "aes-256", b"k" * 32, b"p" * 32)
    with pytest.raises(v3client._NoAnswer, match="wrong digest"):
        v3client._open(parse_message(answer(other, FLAG_AUTH | FLAG_PRIV)), local_user())


def test_an_unauthenticated_report_stops_the_wait_and_goes_to_pysnmp() -> None:
    report = answer(None, 0, PduType.REPORT)
    with pytest.raises(v3client._Refused):
        v3client._open(parse_message(report), local_user())


def test_an_unauthenticated_response_is_dropped_not_believed() -> None:
    forged = answer(None, 0)
    with pytest.raises(v3client._NoAnswer) as info:
        v3client._open(parse_message(forged), local_user())
    assert not isinstance(info.value, v3client._Refused)


def test_stray_datagrams_are_counted_and_dropped() -> None:
    client = v3client.FastUsmClient(lambda: None)  # type: ignore[arg-type, return-value]
    client._on_datagram(b"\x30\x03\x02\x01\x03", ("127.0.0.1", 161))  # not a v3 message
    client._on_datagram(answer(local_user(), FLAG_AUTH | FLAG_PRIV), ("127.0.0.1", 161))
    assert client.rejected == 2  # malformed, and no request waits for msgID 42
