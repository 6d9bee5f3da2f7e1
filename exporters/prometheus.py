"""Prometheus exposition of the agent's latest snapshot, on a registry of its own.

The scheduler publishes an immutable `Snapshot` after every collection and evaluation; a scrape
only renders the newest one (and caches the bytes until the next), so a scrape never collects.
Each metric family's text is kept too and reused while the family's samples are the very same
objects: the agent republishes the unchanged batches of other collectors as they are, so a rule
cycle or a host collector does not re-render the 200,000 series of 100 polled switches.

Sample families are written by a renderer of our own rather than prometheus_client's
`generate_latest`, which spends ~6.5 µs a series (label-name validation and escaping, a dict and
a sort per sample): 1.4 s for 100 switches. Ours writes the same bytes (text format 0.0.4 as
prometheus_client 0.2x writes it) and formats each distinct label set once per render, since
the SNMP poller hands the same label tuple to every metric of an interface row. Anything it
cannot vouch for byte for byte (a name outside the legacy character set, unsorted or repeated
label names) is left to prometheus_client, family by family.
"""

from __future__ import annotations

import logging
import operator
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector

from agent.model import Alert, AlertState, Labels, MetricMeta, MetricType, Priority, Sample
from exporters.text import (
    Unrenderable,
    render_family,
    usable_label_name,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger(__name__)

_AGENT_METRICS = {
    "opswatch_alert": "Active alerts (1 per pending or firing alert), Prometheus ALERTS style.",
    "opswatch_alerts": "Number of active alerts by state and level.",
    "opswatch_remediation_runs": "Remediation runs in the state store by runbook and state.",
    "opswatch_tickets_open": "Open work-order tickets by priority.",
}
_RESERVED = frozenset(
    {"alertname", "alertstate", "level", "priority", "risk", "impact", "likelihood", "suppressed",
     "flapping"}
)  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape shows: the latest samples and the agent's own state."""

    samples: Sequence[Sample] = ()
    meta: Mapping[str, MetricMeta] = field(default_factory=dict)
    alerts: Sequence[Alert] = ()
    run_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    open_tickets: Mapping[Priority, int] = field(default_factory=dict)
    texts: Mapping[str, Sequence[bytes]] = field(default_factory=dict)
    """Pre-rendered sample lines by family name, in pieces of whole UTF-8 lines (see
    `sample_line`), written after the family's `samples`; the SNMP poller hands over its 2,000
    series a switch this way. The pieces are sent as they are, never copied into the page."""


def _family(meta: MetricMeta | None, name: str) -> Metric:
    if meta is None:
        return UnknownMetricFamily(name, "", labels=None)
    if meta.type is MetricType.COUNTER:
        return CounterMetricFamily(name.removesuffix("_total"), meta.help)
    if meta.type is MetricType.GAUGE:
        return GaugeMetricFamily(name, meta.help)
    return UnknownMetricFamily(name, meta.help)


def _latest(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    """Samples by family name, sorted by name; a repeated (name, labels) keeps the last reading."""
    latest: dict[str, dict[Labels, Sample]] = {}
    for s in samples:
        latest.setdefault(s.name, {})[s.labels] = s
    return {name: list(latest[name].values()) for name in sorted(latest)}


def _metric(name: str, meta: MetricMeta | None, samples: Iterable[Sample]) -> Metric:
    family = _family(meta, name)
    sample_name = name if family.type != "counter" else family.name + "_total"
    for s in samples:
        family.add_sample(sample_name, dict(s.labels), s.value)
    return family


def sample_families(samples: Iterable[Sample], meta: Mapping[str, MetricMeta]) -> Iterator[Metric]:
    """Group samples into metric families; a repeated (name, labels) keeps the last reading."""
    for name, family in _latest(samples).items():
        yield _metric(name, meta.get(name), family)


class _Metrics(Collector):
    """Hands prometheus_client's text renderer a fixed list of families."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


class _Rendered:
    """The text of one family in parts (its header and samples, then its pre-rendered pieces),
    valid while its meta, its samples and its pieces (by identity) are unchanged."""

    __slots__ = ("lines", "meta", "parts", "samples")

    def __init__(
        self,
        meta: MetricMeta | None,
        samples: list[Sample],
        lines: Sequence[bytes],
        parts: tuple[bytes, ...],
    ) -> None:
        self.meta, self.samples, self.lines, self.parts = meta, samples, lines, parts

    def fits(self, meta: MetricMeta | None, samples: list[Sample], lines: Sequence[bytes]) -> bool:
        return (
            self.meta == meta
            and len(self.samples) == len(samples)
            and all(map(operator.is_, self.samples, samples))
            and len(self.lines) == len(lines)
            and all(map(operator.is_, self.lines, lines))
        )


class FamilyTexts:
    """Exposition text of the sample families, re-rendering only families whose samples changed.

    A family is rendered whole (one HELP and TYPE) from every sample of that name, whichever
    collectors they came from, so a name shared by several batches stays one valid family; it is
    re-rendered when any of its samples is a new object.
    """

    def __init__(self) -> None:
        self._texts: dict[str, _Rendered] = {}

    def render(
        self,
        samples: Iterable[Sample],
        meta: Mapping[str, MetricMeta],
        texts: Mapping[str, Sequence[bytes]] | None = None,
    ) -> bytes:
        return b"".join(self.render_parts(samples, meta, texts))

    def render_parts(
        self,
        samples: Iterable[Sample],
        meta: Mapping[str, MetricMeta],
        texts: Mapping[str, Sequence[bytes]] | None = None,
    ) -> list[bytes]:
        """The families' texts in parts, in name order; joined, they are `render`'s page.

        A family in `texts` gets its pre-rendered pieces after its samples (if any), under one
        HELP and TYPE; a counter family cannot have any (its name changes when written).
        """
        rendered: dict[str, _Rendered] = {}
        # Per render only: the ~20 metrics of a polled interface row share one label tuple, so
        # each is formatted once; kept no longer, so it costs no memory between scrapes.
        labels: dict[Labels, str] = {}
        old = self._texts
        by_name = _latest(samples)
        pre = texts or {}
        for name in sorted(by_name.keys() | pre.keys()) if pre else by_name:
            family, lines = by_name.get(name, []), pre.get(name, ())
            # Popped, not read: a family's old text (and its old samples) can be freed as soon
            # as its new text exists, so a render never holds two pages of 100 switches.
            known, info = old.pop(name, None), meta.get(name)
            if known is None or not known.fits(info, family, lines):
                if lines and info is not None and info.type is MetricType.COUNTER:
                    # Two collectors claim one name with different types (a profile metric
                    # named like a host counter): the lines would carry the wrong name. The
                    # scrape goes on without them, and says why.
                    log.warning("%d polled lines of counter family %s dropped: two collectors "
                                "name it with different types", len(lines), name)  # fmt: skip
                    lines = ()
                try:
                    head = render_family(name, info, family, labels)
                except Unrenderable:
                    head = generate_latest(_Metrics([_metric(name, info, family)]))
                known = _Rendered(info, family, lines, (head, *lines))
            rendered[name] = known
        self._texts = rendered  # families gone from the snapshot are forgotten
        return [part for family_text in rendered.values() for part in family_text.parts]


def _alert_labels(alert: Alert) -> dict[str, str]:
    # Alert labels can come from webhooks and traps: a name the format cannot carry is dropped
    # rather than allowed to break the whole scrape.
    labels = {k: v for k, v in alert.labels if k not in _RESERVED and usable_label_name(k)}
    labels.update(
        alertname=alert.rule,
        alertstate=alert.state.value,
        level=alert.level.value,
        priority=alert.priority.value,
    )
    risk = {"risk": alert.risk, "impact": alert.impact, "likelihood": alert.likelihood}
    labels.update({k: v for k, v in risk.items() if v})
    if alert.suppressed:
        labels["suppressed"] = "silenced" if alert.silenced_by else "inhibited"
    if alert.flapping:
        labels["flapping"] = "true"
    return labels


def agent_families(snapshot: Snapshot) -> Iterator[Metric]:
    """The agent's own state: alerts, runs and tickets."""
    active = [a for a in snapshot.alerts if a.state is not AlertState.RESOLVED]
    alert = GaugeMetricFamily("opswatch_alert", _AGENT_METRICS["opswatch_alert"])
    for a in active:
        alert.add_sample("opswatch_alert", _alert_labels(a), 1.0)
    yield alert
    counts = GaugeMetricFamily(
        "opswatch_alerts", _AGENT_METRICS["opswatch_alerts"], labels=["state", "level"]
    )
    tally: dict[tuple[str, str], int] = {}
    for a in active:
        tally[(a.state.value, a.level.value)] = tally.get((a.state.value, a.level.value), 0) + 1
    for (state, level), n in sorted(tally.items()):
        counts.add_metric([state, level], n)
    yield counts
    runs = GaugeMetricFamily(
        "opswatch_remediation_runs",
        _AGENT_METRICS["opswatch_remediation_runs"],
        labels=["runbook", "state"],
    )
    for (runbook, state), n in sorted(snapshot.run_counts.items()):
        runs.add_metric([runbook, state], n)
    yield runs
    tickets = GaugeMetricFamily(
        "opswatch_tickets_open", _AGENT_METRICS["opswatch_tickets_open"], labels=["priority"]
    )
    for priority in Priority:
        tickets.add_metric([priority.value], snapshot.open_tickets.get(priority, 0))
    yield tickets


class SnapshotCollector(Collector):
    """A prometheus_client collector that yields whatever snapshot was last published."""

    def __init__(self) -> None:
        self._snapshot = Snapshot()

    def publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        yield from sample_families(snapshot.samples, snapshot.meta)
        yield from agent_families(snapshot)


class MetricsExporter:
    """Owns the registries; renders the snapshot exposition once per published snapshot."""

    def __init__(self, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = SnapshotCollector()
        self.registry.register(self._collector)
        # The agent's own process_* metrics are cheap /proc/self reads, fresh on every scrape.
        self._process = CollectorRegistry(auto_describe=False) if process_metrics else None
        if self._process is not None:
            ProcessCollector(registry=self._process)
        self._lock = threading.Lock()
        self._version = 0
        self._cached: tuple[int, tuple[bytes, ...]] | None = None
        self._joined: tuple[int, bytes] | None = None
        self._families = FamilyTexts()
        self.streams: list[Callable[[], AsyncIterator[bytes]]] = []
        """Pages written elsewhere (the SNMP poller process), sent after `render_parts`'s by
        the HTTP server; `render` leaves them out."""

    def publish(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._collector.publish(snapshot)
            self._version += 1

    @property
    def snapshot(self) -> Snapshot:
        return self._collector.snapshot

    def _render(self, snapshot: Snapshot) -> tuple[bytes, ...]:
        """The same text as rendering `self.registry`, reusing unchanged families' text."""
        samples = self._families.render_parts(snapshot.samples, snapshot.meta, snapshot.texts)
        return (*samples, generate_latest(_Metrics(agent_families(snapshot))))

    def _parts(self) -> tuple[int, tuple[bytes, ...]]:
        """The cached page of the latest snapshot as family texts; call with the lock held."""
        if self._cached is None or self._cached[0] != self._version:
            self._cached = self._joined = None  # free the old page before building the new
            self._cached = (self._version, self._render(self._collector.snapshot))
        return self._cached

    def render_parts(self) -> list[bytes]:
        """`render`'s page in pieces, for a server that can send them without joining.

        The page of 100 switches is 17 MiB: joining it, and again to append the process
        metrics, cost two copies of it per scrape in memory and time.
        """
        with self._lock:
            parts = list(self._parts()[1])
        if self._process is not None:
            parts.append(generate_latest(self._process))
        return parts

    def render(self) -> bytes:
        """The text exposition of the latest snapshot plus the agent's process metrics."""
        with self._lock:
            version, parts = self._parts()
            if self._joined is None or self._joined[0] != version:
                self._joined = (version, b"".join(parts))
            body = self._joined[1]
        return body + generate_latest(self._process) if self._process is not None else body
