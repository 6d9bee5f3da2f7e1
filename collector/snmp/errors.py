"""The SNMP package's exceptions: one root, so callers catch `SnmpError` and nothing else.

OpsWatchError
└── SnmpError              anything the SNMP code raises on purpose
    ├── SnmpDecodeError    bytes are not a well-formed SNMP message (never IndexError & co.)
    ├── SnmpValueError     an OID or value cannot be put into SNMP (also a ValueError)
    ├── SnmpTimeout        no valid answer after every retry (how a wrong v1/v2c community
    │                      looks: the agent stays silent)
    ├── SnmpAuthError      the agent rejected our credentials (v3 usmStats reports)
    └── SnmpResponseError  the agent answered with a non-zero error-status
"""

from __future__ import annotations

from agent.errors import OpsWatchError


class SnmpError(OpsWatchError):
    """Root of the SNMP package's errors."""


class SnmpDecodeError(SnmpError):
    """A datagram is not a well-formed SNMP message."""


class SnmpValueError(SnmpError, ValueError):
    """An OID or value cannot be encoded; a ValueError so config validators report it."""


class SnmpTimeout(SnmpError):
    """No valid answer arrived within the timeout and retries."""


class SnmpAuthError(SnmpError):
    """The agent rejected the credentials (reported, not guessed from a timeout)."""


class SnmpResponseError(SnmpError):
    """The agent answered with a non-zero error-status (tooBig, noSuchName, genErr...)."""

    def __init__(self, status: int, index: int) -> None:
        self.status = status
        self.index = index
        name = ERROR_STATUS_NAMES.get(status, "unknown")
        super().__init__(f"agent error-status {status} ({name}) at varbind {index}")


ERROR_STATUS_NAMES = {
    0: "noError",
    1: "tooBig",
    2: "noSuchName",
    3: "badValue",
    4: "readOnly",
    5: "genErr",
    6: "noAccess",
    7: "wrongType",
    8: "wrongLength",
    9: "wrongEncoding",
    10: "wrongValue",
    11: "noCreation",
    12: "inconsistentValue",
    13: "resourceUnavailable",
    14: "commitFailed",
    15: "undoFailed",
    16: "authorizationError",
    17: "notWritable",
    18: "inconsistentName",
}
