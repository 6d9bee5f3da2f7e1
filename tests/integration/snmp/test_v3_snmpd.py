"""SNMPv3 against a real net-snmp snmpd: authPriv works, each wrong setting says what is wrong."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from integration.snmp.conftest import V3_USERS, Snmpd, V3User

from collector.snmp.errors import SnmpAuthError, SnmpError, SnmpTimeout
from collector.snmp.model import Oid, Tag
from collector.snmp.usm import AuthProtocol, PrivProtocol, UsmClient, UsmUser, V3Target

pytestmark = pytest.mark.integration
T = TypeVar("T")
SYS_NAME_0 = Oid.parse("1.3.6.1.2.1.1.5.0")
SYSTEM = Oid.parse("1.3.6.1.2.1.1")
SHA_AES, SHA256_AES256, SHA_AES256 = V3_USERS
PROTOCOLS: dict[str, tuple[AuthProtocol, PrivProtocol]] = {
    SHA_AES.name: ("sha", "aes"),
    SHA256_AES256.name: ("sha256", "aes256"),  # net-snmp's AES-256 is Blumenthal
    SHA_AES256.name: ("sha", "aes256"),
}


def user(u: V3User, **change: Any) -> UsmUser:
    auth, priv = PROTOCOLS[u.name]
    fields: dict[str, Any] = {
        "user": u.name,
        "auth_protocol": auth,
        "auth_key": u.auth_key,
        "priv_protocol": priv,
        "priv_key": u.priv_key,
    }
    return UsmUser(**(fields | change))


def ask(snmpd: Snmpd, usm_user: UsmUser, walk: bool = False) -> Any:
    async def job() -> Any:
        client = UsmClient()
        try:
            target = V3Target("127.0.0.1", usm_user, snmpd.port, timeout=0.5, retries=0)
            return await (client.walk(target, SYSTEM) if walk else client.get(target, [SYS_NAME_0]))
        finally:
            client.close()

    return run(job())


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.mark.parametrize("u", V3_USERS, ids=lambda u: u.name)
def test_auth_priv_get(snmpd: Snmpd, u: V3User) -> None:
    [vb] = ask(snmpd, user(u))
    assert (vb.oid, vb.tag, vb.value) == (SYS_NAME_0, Tag.OCTET_STRING, b"ow-test")


def test_v3_walk_equals_net_snmp_walk(snmpd: Snmpd) -> None:
    u = SHA256_AES256
    ours = ask(snmpd, user(u), walk=True)
    argv = ["snmpbulkwalk", "-v3", "-l", "authPriv", "-u", u.name, "-a", u.auth, "-A", u.auth_key,
            "-x", u.priv, "-X", u.priv_key, "-On", snmpd.address, str(SYSTEM)]  # fmt: skip
    done = subprocess.run(argv, env=snmpd.env, capture_output=True, text=True, timeout=30)
    theirs = [line.split(" = ")[0].lstrip(".") for line in done.stdout.splitlines()]
    assert [str(vb.oid) for vb in ours] == theirs


def test_wrong_auth_key(snmpd: Snmpd) -> None:
    with pytest.raises(SnmpAuthError, match="wrong auth key"):
        ask(snmpd, user(SHA_AES, auth_key="not-the-auth-key"))


def test_wrong_priv_key(snmpd: Snmpd) -> None:
    with pytest.raises(SnmpAuthError, match=r"wrong priv key \(auth key is right\)"):
        ask(snmpd, user(SHA_AES, priv_key="not-the-priv-key"))


def test_unknown_user(snmpd: Snmpd) -> None:
    with pytest.raises(SnmpAuthError, match="unknown user"):
        ask(snmpd, user(SHA_AES, user="nobody-here"))


def test_security_level_below_the_users(snmpd: Snmpd) -> None:
    with pytest.raises(SnmpAuthError, match=r"not authorized .* at security level authNoPriv"):
        ask(snmpd, user(SHA_AES, priv_protocol=None, priv_key=None))


def test_aes256_dialect_mismatch_is_named(snmpd: Snmpd) -> None:
    with pytest.raises(SnmpAuthError) as info:
        ask(snmpd, user(SHA_AES256, priv_protocol="aes256c"))  # Cisco's dialect, net-snmp agent
    assert "AES dialect mismatch" in str(info.value)
    assert "priv_protocol aes256, not aes256c" in str(info.value)


def test_sha256_makes_both_dialects_agree(snmpd: Snmpd) -> None:
    [vb] = ask(snmpd, user(SHA256_AES256, priv_protocol="aes256c"))
    assert vb.value == b"ow-test"


def test_silent_port_is_a_timeout_with_the_dialect_hint(snmpd: Snmpd) -> None:
    dead = Snmpd(port=1, community="", env=snmpd.env)  # nothing listens on 127.0.0.1:1/udp
    with pytest.raises(SnmpTimeout) as info:
        ask(dead, user(SHA_AES256))
    assert "aes256 (Blumenthal, net-snmp) vs aes256c (Reeder, Cisco)" in str(info.value)


def test_errors_never_contain_keys(snmpd: Snmpd) -> None:
    for change in ({"auth_key": "wrong-auth-key"}, {"priv_key": "wrong-priv-key"}):
        with pytest.raises(SnmpError) as info:
            ask(snmpd, user(SHA_AES, **change))
        text = str(info.value)
        assert SHA_AES.auth_key not in text and SHA_AES.priv_key not in text
        assert "wrong-auth-key" not in text and "wrong-priv-key" not in text
