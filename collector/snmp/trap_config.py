"""The `traps:` section of agent.yaml: where to listen, who may send, and what traps mean.

v1/v2c senders prove themselves with a community; v3 senders with a USM user. A v3 *trap* is
authenticated with keys localized to the sender's engine ID, so each trap user names that
engine ID; a v3 *inform* uses keys localized to our own engine ID (`engine_id` here), so every
user, with or without a sender engine ID, may also send informs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from agent.config_base import Secret, Strict

AuthProtocol = Literal["md5", "sha", "sha-224", "sha-256", "sha-384", "sha-512"]
PrivProtocol = Literal["des", "aes", "aes-192", "aes-256", "aes-192c", "aes-256c"]
"""`aes-192`/`aes-256` extend the key as net-snmp does (Blumenthal); the `c` variants as Cisco
does (Reeder). With SHA-1 or MD5 auth the two give different keys, so the user must choose."""

_MIN_PASSPHRASE = 8  # RFC 3414 section 11.2: shorter passphrases are refused by net-snmp too


def _lower(value: object) -> object:
    # net-snmp spells them `SHA-256`/`AES`; accept either case so users can paste its flags.
    return value.lower() if isinstance(value, str) else value


def engine_id_bytes(text: str) -> bytes:
    """Parse an engine ID written as hex (`0x8000...`, `80:00:...` or plain)."""
    digits = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raise PydanticCustomError("engine_id", "engine ID '{v}' is not hex", {"v": text}) from None
    if not 5 <= len(raw) <= 32:  # SnmpEngineID size, RFC 3411
        raise PydanticCustomError("engine_id", "engine ID must be 5 to 32 octets long")
    return raw


def _check_engine_id(value: str | None) -> str | None:
    if value is not None:
        engine_id_bytes(value)
    return value


def _check_oid(value: str) -> str:
    parts = value.strip().removeprefix(".").split(".")
    if len(parts) < 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise PydanticCustomError("oid", "'{v}' is not a numeric OID", {"v": value})
    return ".".join(str(int(p)) for p in parts)


EngineId = Annotated[str, BeforeValidator(_lower)]
NumericOid = Annotated[str, BeforeValidator(str)]


class TrapUser(Strict):
    """One USM user allowed to send v3 traps (from `engine_id`) and informs (to us)."""

    name: str = Field(min_length=1, max_length=32)
    engine_id: EngineId | None = None
    """The sender's snmpEngineID in hex; needed for traps, not for informs."""
    auth_protocol: Annotated[AuthProtocol | None, BeforeValidator(_lower)] = None
    auth_key: Secret | None = None
    priv_protocol: Annotated[PrivProtocol | None, BeforeValidator(_lower)] = None
    priv_key: Secret | None = None

    _engine = field_validator("engine_id")(_check_engine_id)

    @model_validator(mode="after")
    def _keys_match_protocols(self) -> TrapUser:
        for proto, key, what in (
            (self.auth_protocol, self.auth_key, "auth"),
            (self.priv_protocol, self.priv_key, "priv"),
        ):
            if (proto is None) != (key is None):
                raise PydanticCustomError(
                    "usm", "set {w}_protocol and {w}_key together", {"w": what}
                )
            if key is not None and len(key.get_secret_value()) < _MIN_PASSPHRASE:
                raise PydanticCustomError(
                    "usm", "{w}_key must be at least 8 characters", {"w": what}
                )
        if self.priv_protocol is not None and self.auth_protocol is None:
            raise PydanticCustomError("usm", "privacy needs authentication (authPriv)")
        return self


class TrapMapping(Strict):
    """An enterprise trap OID → event name, and which varbinds become which labels."""

    oid: NumericOid
    name: str = Field(min_length=1)
    labels: dict[str, NumericOid] = {}
    """label name → varbind OID prefix; the first varbind under the prefix gives the value."""

    _oid = field_validator("oid")(_check_oid)

    @field_validator("labels")
    @classmethod
    def _label_oids(cls, value: dict[str, str]) -> dict[str, str]:
        return {label: _check_oid(oid) for label, oid in value.items()}


class TrapConfig(Strict):
    """The trap receiver: listen address, credentials, device names and trap mappings."""

    enabled: bool = False
    listen: str = "0.0.0.0:162"
    communities: list[Secret] = []
    """v1/v2c communities accepted; a trap with any other is counted and dropped."""
    users: list[TrapUser] = []
    engine_id: EngineId | None = None
    """Our own snmpEngineID (hex), which v3 informs are sent to; default derived from hostname."""
    devices: dict[str, str] = {}
    """Source address → device name (the `device` label); unknown sources keep their IP."""
    mappings: list[TrapMapping] = []

    _engine = field_validator("engine_id")(_check_engine_id)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
            raise PydanticCustomError("listen", "expected HOST:PORT, got '{v}'", {"v": value})
        return value

    @field_validator("devices")
    @classmethod
    def _device_addresses(cls, value: dict[str, str]) -> dict[str, str]:
        for address in value:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise PydanticCustomError(
                    "devices", "'{a}' is not an IP address", {"a": address}
                ) from None
        return value

    @model_validator(mode="after")
    def _unique_users(self) -> TrapConfig:
        seen = [(u.name, u.engine_id) for u in self.users]
        if len(seen) != len(set(seen)):
            raise PydanticCustomError("users", "a user name appears twice for one engine ID")
        return self

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"  # noqa: S104

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def local_engine_id(self) -> bytes:
        """Our engine ID: configured, else stable per host (RFC 3411 format 5, enterprise 0)."""
        if self.engine_id is not None:
            return engine_id_bytes(self.engine_id)
        digest = hashlib.sha256(socket.gethostname().encode()).digest()[:12]
        return bytes.fromhex("8000000005") + digest
