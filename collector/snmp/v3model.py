"""SNMPv3 users and targets as plain data: what config and the poller need without pysnmp.

pysnmp (and the ~20 MiB it loads) is imported only by collector.snmp.usm, and only once a v3
target is actually polled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from collector.snmp.errors import SnmpValueError

AuthProtocol = Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"]
PrivProtocol = Literal["des", "aes", "aes192", "aes192c", "aes256", "aes256c"]

_DIGEST_BYTES = {"md5": 16, "sha": 20, "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64}
_PRIV_KEY_BYTES = {"aes192": 24, "aes192c": 24, "aes256": 32, "aes256c": 32}


@dataclass(frozen=True, slots=True)
class UsmUser:
    """A v3 user: name, protocols and keys (never in repr), context and optional engine ID."""

    user: str
    auth_protocol: AuthProtocol | None = None
    auth_key: str | None = field(default=None, repr=False)
    priv_protocol: PrivProtocol | None = None
    priv_key: str | None = field(default=None, repr=False)
    context: str = ""
    engine_id: bytes | None = None

    def __post_init__(self) -> None:
        if (self.auth_protocol is None) != (self.auth_key is None):
            raise SnmpValueError("auth_protocol and auth_key go together")
        if (self.priv_protocol is None) != (self.priv_key is None):
            raise SnmpValueError("priv_protocol and priv_key go together")
        if self.priv_protocol is not None and self.auth_protocol is None:
            raise SnmpValueError("privacy needs authentication (no authNoPriv-less priv in USM)")

    @property
    def security_level(self) -> str:
        """noAuthNoPriv, authNoPriv or authPriv."""
        if self.priv_protocol:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol else "noAuthNoPriv"

    @property
    def dialect_sensitive(self) -> bool:
        """True when the two AES key extensions give different keys (digest shorter than key)."""
        need = _PRIV_KEY_BYTES.get(self.priv_protocol or "", 0)
        return need > _DIGEST_BYTES.get(self.auth_protocol or "", 0) > 0


@dataclass(frozen=True, slots=True)
class V3Target:
    """Where to ask one v3 agent; `timeout` per try in seconds."""

    host: str
    user: UsmUser
    port: int = 161
    timeout: float = 1.0
    retries: int = 1
