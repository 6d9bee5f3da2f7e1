"""The core types every part of OpsWatch speaks: samples, alerts, runs and tickets.

Plain frozen dataclasses: collectors produce `Sample`s, the rule engine turns windows of them
into `Alert`s, remediation turns alerts into `RemediationRun`s and `Ticket`s. Field names of
`Alert` follow Alertmanager's so an alert can be forwarded unchanged.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]
"""Sorted (name, value) pairs: hashable, so a (name, labels) pair keys a series."""


def make_labels(items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> Labels:
    """Normalise a mapping or pairs into sorted `Labels`, dropping empty values."""
    pairs = items.items() if isinstance(items, Mapping) else items
    return tuple(sorted((str(k), str(v)) for k, v in pairs if v != ""))


class MetricType(enum.StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    UNTYPED = "untyped"


@dataclass(frozen=True, slots=True)
class MetricMeta:
    """What the exporter needs to describe a metric family: its type and help text."""

    name: str
    type: MetricType
    help: str


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading. Names and labels follow Prometheus conventions (base units, `_total`)."""

    name: str
    labels: Labels
    value: float
    timestamp: float

    @property
    def key(self) -> tuple[str, Labels]:
        return (self.name, self.labels)

    def label(self, name: str, default: str = "") -> str:
        for k, v in self.labels:
            if k == name:
                return v
        return default


def sample(name: str, value: float, timestamp: float, **labels: str) -> Sample:
    """Shorthand used by collectors: `sample("node_load1", 0.3, now)`."""
    return Sample(name, make_labels(labels), float(value), timestamp)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at an instant (an SNMP trap, a webhook call), not a reading."""

    name: str
    """What happened, e.g. `linkDown`, `coldStart`, or a user-mapped trap name."""
    labels: Labels
    """Identifying labels (device, ifIndex, ifName...): rules match and fingerprint on these."""
    fields: Labels
    """Everything else the event carried, as text (untrusted: data, never a template)."""
    timestamp: float
    source: str
    """`snmp_trap`, `webhook`, ..."""


class Level(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]


_LEVEL_RANK = {Level.INFO: 1, Level.WARNING: 2, Level.CRITICAL: 3}


class AlertState(enum.StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Priority(enum.StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @property
    def urgency(self) -> str:
        return {"P1": "urgent", "P2": "important", "P3": "general"}[self.value]


def fingerprint(rule: str, labels: Labels) -> str:
    """Stable hash of a rule name and the alert's identifying labels (same across restarts)."""
    import hashlib  # here, not at the top: OpenSSL costs the SNMP poller process ~4 MiB

    payload = json.dumps([rule, list(labels)], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert instance: one rule over one label set, as the rule engine last saw it."""

    fingerprint: str
    rule: str
    state: AlertState
    level: Level
    labels: Labels
    annotations: Labels
    value: float
    starts_at: float
    ends_at: float | None = None
    active_since: float | None = None
    """When the condition first held (pending start); `starts_at` is when it fired."""
    threshold: float | None = None
    priority: Priority = Priority.P3
    likelihood: str = ""
    impact: str = ""
    risk: str = ""
    policy: str = ""
    """What the risk matrix allows: auto, approval, two_approvers or ticket_only."""
    flapping: bool = False
    silenced_by: str | None = None
    inhibited_by: str | None = None
    """Fingerprint of the alert that hides this one (a device down hides its interfaces)."""

    def label(self, name: str, default: str = "") -> str:
        return dict(self.labels).get(name, default)

    @property
    def suppressed(self) -> bool:
        """Silenced or inhibited: evaluated and exported, but starts no action and no ticket."""
        return self.silenced_by is not None or self.inhibited_by is not None


class RunState(enum.StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    VERIFIED = "verified"
    INEFFECTIVE = "ineffective"

    @property
    def final(self) -> bool:
        return self in _FINAL_RUN_STATES


_FINAL_RUN_STATES = frozenset(
    {
        RunState.REJECTED,
        RunState.EXPIRED,
        RunState.FAILED,
        RunState.INTERRUPTED,
        RunState.VERIFIED,
        RunState.INEFFECTIVE,
    }
)


@dataclass(frozen=True, slots=True)
class RemediationRun:
    id: str
    fingerprint: str
    rule: str
    runbook: str
    target: str
    variables: Mapping[str, str]
    state: RunState
    agent: str
    created_at: float
    updated_at: float
    expires_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    approved_by: str | None = None
    reason: str | None = None
    rc: int | None = None
    output: str = ""
    preview: str = ""
    approvals_needed: int = 1
    """People who must approve it (2 under the `two_approvers` policy; 0 never: auto runs
    are created approved)."""
    first_approver: str | None = None
    """The first of two approvals, until someone else gives the second."""


class TicketState(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class TicketEvent:
    at: float
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    fingerprint: str
    rule: str
    title: str
    body: str
    priority: Priority
    state: TicketState
    host: str
    opened_at: float
    response_due: float
    resolution_due: float
    occurrences: int = 1
    external_id: str | None = None
    assignee: str | None = None
    resolved_at: float | None = None
    resolution: str | None = None
    history: tuple[TicketEvent, ...] = field(default=())
