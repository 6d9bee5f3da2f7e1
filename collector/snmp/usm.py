"""SNMPv3 (USM) get and walk through pysnmp 7: the only module that imports pysnmp.

pysnmp does USM well (engine-ID discovery, time sync, every auth and priv protocol, both
AES-256 dialects) but its objects stop here: callers get our `VarBind`s and `SnmpError`s.
Error indications become errors a user can act on; where the agent only stays silent (a wrong
priv key, an AES-256 dialect mismatch) a failed request is diagnosed with a second engine
before it is reported as a plain timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pysnmp.hlapi.v3arch import asyncio as hl
from pysnmp.proto import errind
from pysnmp.smi.rfc1902 import ObjectIdentity, ObjectType

from collector.snmp.errors import (
    SnmpAuthError,
    SnmpError,
    SnmpResponseError,
    SnmpTimeout,
)
from collector.snmp.model import Oid, Tag, Value, VarBind, bulk_walk
from collector.snmp.v3model import AuthProtocol, PrivProtocol, UsmUser, V3Target

__all__ = ["AuthProtocol", "PrivProtocol", "UsmClient", "UsmUser", "V3Target"]

log = logging.getLogger(__name__)


_AUTH: dict[str, Any] = {
    "md5": hl.usmHMACMD5AuthProtocol,
    "sha": hl.usmHMACSHAAuthProtocol,
    "sha224": hl.usmHMAC128SHA224AuthProtocol,
    "sha256": hl.usmHMAC192SHA256AuthProtocol,
    "sha384": hl.usmHMAC256SHA384AuthProtocol,
    "sha512": hl.usmHMAC384SHA512AuthProtocol,
}
# "aes192"/"aes256" extend the key as net-snmp does (Blumenthal draft); the "c" variants as
# Cisco does (Reeder draft). pysnmp names them the other way round, hence this table.
_PRIV: dict[str, Any] = {
    "des": hl.usmDESPrivProtocol,
    "aes": hl.usmAesCfb128Protocol,
    "aes192": hl.usmAesBlumenthalCfb192Protocol,
    "aes192c": hl.usmAesCfb192Protocol,
    "aes256": hl.usmAesBlumenthalCfb256Protocol,
    "aes256c": hl.usmAesCfb256Protocol,
}
_OTHER_DIALECT: dict[str, PrivProtocol] = {
    "aes192": "aes192c",
    "aes192c": "aes192",
    "aes256": "aes256c",
    "aes256c": "aes256",
}
_AUTHORIZATION_ERROR = 16
_DIALECT_HINT = (
    "if this is an AES-256 target, check priv_protocol aes256 (Blumenthal, net-snmp) "
    "vs aes256c (Reeder, Cisco)"
)
_AUTH_ERRORS: tuple[tuple[type[Any], str], ...] = (
    (errind.WrongDigest, "wrong auth key"),
    (errind.AuthenticationFailure, "wrong auth key"),
    (errind.UnknownUserName, "unknown user"),
    (errind.UnknownSecurityName, "unknown user"),
    (errind.UnsupportedSecurityLevel, "unsupported security level for this user"),
    (errind.DecryptionError, "wrong priv key"),
    (errind.NotInTimeWindow, "not in time window (engine boots/time out of sync)"),
    (errind.UnsupportedAuthProtocol, "auth protocol not supported by the agent"),
    (errind.UnsupportedPrivProtocol, "priv protocol not supported by the agent"),
    (errind.UnknownEngineID, "unknown engine ID"),
)


class UsmClient:
    """v3 get and walk; one pysnmp engine per client, so one client per credential set."""

    def __init__(self, *, max_repetitions: int = 25, max_walk_varbinds: int = 100_000) -> None:
        self._engine = hl.SnmpEngine()
        self._max_repetitions = max_repetitions
        self._max_walk_varbinds = max_walk_varbinds
        self.pdus_sent = 0

    def close(self) -> None:
        """Release the engine's sockets."""
        self._engine.close_dispatcher()

    async def get(self, target: V3Target, oids: Sequence[Sequence[int]]) -> list[VarBind]:
        """GET `oids`; exceptions (noSuchObject...) come back as tagged varbinds."""
        return await self.request(target, "get", [Oid(o) for o in oids])

    async def walk(self, target: V3Target, root: Sequence[int]) -> list[VarBind]:
        """Every varbind under `root`, by GetBulk pages."""

        async def next_page(after: Oid) -> list[VarBind]:
            return await self.request(target, "bulk", [after])

        return await bulk_walk(next_page, Oid(root), self._max_walk_varbinds, target.host)

    async def request(self, target: V3Target, kind: str, oids: list[Oid]) -> list[VarBind]:
        """One GET (`kind` "get") or GetBulk ("bulk") request; errors say what is wrong."""
        self.pdus_sent += 1
        indication, status, index, varbinds = await _send(
            self._engine, target, target.user, kind, oids, self._max_repetitions
        )
        if isinstance(indication, errind.RequestTimedOut):
            raise await _diagnose_timeout(target)
        if indication:
            raise _translate(indication, target)
        if int(status) == _AUTHORIZATION_ERROR:  # VACM said no: a credential problem to a user
            raise SnmpAuthError(
                f"{target.host}:{target.port} user {target.user.user!r}: not authorized "
                f"(authorizationError) at security level {target.user.security_level}; "
                "check the level the agent requires for this user and its view"
            )
        if int(status):
            raise SnmpResponseError(int(status), int(index))
        return [_varbind(name, value) for name, value in varbinds]


async def _send(
    engine: Any, target: V3Target, user: UsmUser, kind: str, oids: list[Oid], reps: int
) -> tuple[Any, Any, Any, Any]:
    transport = await hl.UdpTransportTarget.create(
        (target.host, target.port), timeout=target.timeout, retries=target.retries
    )
    context = hl.ContextData(contextName=user.context)
    objects = [ObjectType(ObjectIdentity(str(o))) for o in oids]
    auth = _user_data(user)
    if kind == "bulk":
        result = await hl.bulk_cmd(engine, auth, transport, context, 0, reps, *objects)
    else:
        result = await hl.get_cmd(engine, auth, transport, context, *objects)
    return tuple(result)


def _user_data(user: UsmUser) -> Any:
    return hl.UsmUserData(
        user.user,
        authKey=user.auth_key,
        privKey=user.priv_key,
        authProtocol=_AUTH[user.auth_protocol] if user.auth_protocol else hl.usmNoAuthProtocol,
        privProtocol=_PRIV[user.priv_protocol] if user.priv_protocol else hl.usmNoPrivProtocol,
        securityEngineId=user.engine_id,
    )


def _translate(indication: Any, target: V3Target) -> SnmpError:
    where = f"{target.host}:{target.port} user {target.user.user!r}"
    for kind, text in _AUTH_ERRORS:
        if isinstance(indication, kind):
            return SnmpAuthError(f"{where}: {text}")
    return SnmpError(f"{where}: {indication}")


async def _diagnose_timeout(target: V3Target) -> SnmpError:
    """Tell a silent agent from one that cannot decrypt us (wrong priv key or AES dialect)."""
    user, where = target.user, f"{target.host}:{target.port}"
    tries = target.retries + 1
    plain = SnmpTimeout(f"no answer from {where} after {tries} tries")
    if user.security_level != "authPriv":
        return plain
    probe = V3Target(target.host, _without_priv(user), target.port, target.timeout, 0)
    if not await _answers(probe):
        if user.dialect_sensitive:
            return SnmpTimeout(f"{plain}; {_DIALECT_HINT}")
        return plain
    other = _OTHER_DIALECT.get(user.priv_protocol or "")
    if other and user.dialect_sensitive:
        swapped = V3Target(target.host, _with_priv(user, other), target.port, target.timeout, 0)
        if await _answers(swapped):
            return SnmpAuthError(
                f"{where}: AES dialect mismatch: the agent answers to priv_protocol {other}, "
                f"not {user.priv_protocol} ({_DIALECT_HINT})"
            )
    return SnmpAuthError(f"{where} user {user.user!r}: wrong priv key (auth key is right)")


async def _answers(target: V3Target) -> bool:
    """True if the agent authenticates this user (a report of security level counts)."""
    engine = hl.SnmpEngine()  # a fresh engine: the probe must not disturb the shared one's users
    try:
        indication, *_ = await _send(engine, target, target.user, "get", [_SYS_UPTIME], 1)
    finally:
        engine.close_dispatcher()
    log.debug("v3 diagnosis probe of %s: %s", target.host, indication or "answered")
    return indication is None or isinstance(indication, errind.UnsupportedSecurityLevel)


def _without_priv(user: UsmUser) -> UsmUser:
    return UsmUser(user.user, user.auth_protocol, user.auth_key, None, None, user.context,
                   user.engine_id)  # fmt: skip


def _with_priv(user: UsmUser, priv: PrivProtocol) -> UsmUser:
    return UsmUser(user.user, user.auth_protocol, user.auth_key, priv,
                   user.priv_key, user.context, user.engine_id)  # fmt: skip


_SYS_UPTIME = Oid((1, 3, 6, 1, 2, 1, 1, 3, 0))


def _varbind(name: Any, value: Any) -> VarBind:
    """Convert one pysnmp (ObjectName, value) into our VarBind, by the value's BER tag."""
    last = value.tagSet[-1]  # the outermost tag is what goes on the wire
    tag = Tag(last.tagClass | last.tagFormat | last.tagId)
    return VarBind(Oid(tuple(name)), tag, _value(tag, value))


def _value(tag: Tag, value: Any) -> Value:
    if tag >= Tag.NO_SUCH_OBJECT or tag is Tag.NULL:
        return None
    if tag in (Tag.OCTET_STRING, Tag.OPAQUE):
        return bytes(value.asOctets())
    if tag is Tag.IP_ADDRESS:
        return ".".join(str(b) for b in value.asNumbers())
    if tag is Tag.OBJECT_IDENTIFIER:
        return Oid(tuple(value))
    return int(value)
