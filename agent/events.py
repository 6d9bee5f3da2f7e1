"""Event rules, pure: an event (trap, webhook) fires an alert; a later event, a polled value or
time clears it. Same Alert type, fingerprints and lifecycle as threshold rules."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from agent import expr as expr_lang
from agent.evaluate import evaluate as evaluate_expr
from agent.event_config import EventMatch, EventRuleConfig
from agent.model import Alert, AlertState, Event, Labels, fingerprint, make_labels
from agent.rules import render_template
from agent.series import SeriesView
from agent.silences import matches


@dataclass(frozen=True)
class CompiledEventRule:
    name: str
    config: EventRuleConfig
    clear_expr: expr_lang.Expr | None
    static_labels: Labels


@dataclass(frozen=True)
class EventStatus:
    """A firing event alert and when a matching event was last seen (for `resolve_after`)."""

    alert: Alert
    last_seen: float

    @staticmethod
    def restored(alert: Alert) -> EventStatus:
        """From a stored alert after a restart: the last event time is not kept, so the start."""
        return EventStatus(alert, alert.starts_at)


@dataclass(frozen=True)
class EventAlerts:
    alerts: list[Alert]
    state: dict[str, EventStatus] = field(default_factory=dict)
    """Firing event alerts by fingerprint, for the next cycle."""
    capped: Counter[str] = field(default_factory=Counter)
    """Matching events per rule that found the rule at its `max_alerts` and opened nothing."""


def compile_event_rules(
    configs: Sequence[EventRuleConfig], static_labels: Mapping[str, str] | None = None
) -> list[CompiledEventRule]:
    static = make_labels(static_labels or {})
    return [
        CompiledEventRule(
            c.name, c, expr_lang.parse(c.clear_expr) if c.clear_expr else None, static
        )
        for c in configs
    ]


def _matches(match: EventMatch, event: Event) -> bool:
    return event.name == match.name and matches(match.match, dict(event.labels))


def clears(rule: CompiledEventRule, event: Event) -> bool:
    return rule.config.clear_event is not None and _matches(rule.config.clear_event, event)


def _identity(rule: CompiledEventRule, event: Event) -> Labels:
    labels = dict(event.labels)
    wanted = rule.config.identify or list(labels)
    own = {k: labels[k] for k in wanted if k in labels}
    merged = {**dict(rule.static_labels), **own, **rule.config.labels, "alertname": rule.name}
    return make_labels(merged)


def _fire(rule: CompiledEventRule, event: Event, labels: Labels) -> Alert:
    values = dict(labels)
    annotations = {
        k: render_template(v, values, 1.0, None) for k, v in rule.config.annotations.items()
    }
    return Alert(
        fingerprint=fingerprint(rule.name, labels), rule=rule.name, state=AlertState.FIRING,
        level=rule.config.level, labels=labels, annotations=make_labels(annotations),
        value=1.0, starts_at=event.timestamp, active_since=event.timestamp,
    )  # fmt: skip


def _resolve(alert: Alert, now: float) -> Alert:
    return replace(alert, state=AlertState.RESOLVED, ends_at=now, value=0.0)


def evaluate_events(
    rules: Sequence[CompiledEventRule],
    events: Iterable[Event],
    series: SeriesView,
    now: float,
    previous: Mapping[str, EventStatus],
) -> EventAlerts:
    """Apply this cycle's events (in time order), then polled and timed clears."""
    by_name = {r.name: r for r in rules}
    firing = {fp: s.alert for fp, s in previous.items() if s.alert.rule in by_name}
    resolved: dict[str, Alert] = {}
    last_seen = {fp: s.last_seen for fp, s in previous.items() if fp in firing}
    per_rule = Counter(a.rule for a in firing.values())
    capped: Counter[str] = Counter()
    for event in sorted(events, key=lambda e: e.timestamp):
        for rule in rules:
            _apply(rule, event, firing, resolved, last_seen, per_rule, capped)
    for rule in rules:
        for fp in _cleared_by_poll_or_time(rule, firing, last_seen, series, now):
            resolved[fp] = _resolve(firing.pop(fp), now)
    alerts = [*firing.values(), *resolved.values()]
    state = {fp: EventStatus(a, last_seen[fp]) for fp, a in firing.items()}
    return EventAlerts(alerts, state, capped)


def _apply(
    rule: CompiledEventRule,
    event: Event,
    firing: dict[str, Alert],
    resolved: dict[str, Alert],
    last_seen: dict[str, float],
    per_rule: Counter[str],
    capped: Counter[str],
) -> None:
    labels = _identity(rule, event)
    fp = fingerprint(rule.name, labels)
    if _matches(rule.config.event, event):
        if fp not in firing:
            if per_rule[rule.name] >= rule.config.max_alerts:
                capped[rule.name] += 1
                return
            firing[fp] = _fire(rule, event, labels)
            per_rule[rule.name] += 1
            resolved.pop(fp, None)
        last_seen[fp] = event.timestamp
    elif clears(rule, event) and fp in firing:
        resolved[fp] = _resolve(firing.pop(fp), event.timestamp)
        per_rule[rule.name] -= 1


def _cleared_by_poll_or_time(
    rule: CompiledEventRule,
    firing: Mapping[str, Alert],
    last_seen: Mapping[str, float],
    series: SeriesView,
    now: float,
) -> list[str]:
    mine = [fp for fp, a in firing.items() if a.rule == rule.name]
    after = rule.config.resolve_after
    out = [fp for fp in mine if after is not None and now - last_seen[fp] >= after]
    if rule.clear_expr is not None and mine:
        healthy = [dict(k) for k in evaluate_expr(rule.clear_expr, series, now)]
        wanted = rule.config.identify
        for fp in mine:
            if fp not in out and _any_match(firing[fp], healthy, wanted):
                out.append(fp)
    return out


def _any_match(alert: Alert, elements: Sequence[dict[str, str]], identify: Sequence[str]) -> bool:
    """A polled element clears the alert when it carries the alert's identifying labels."""
    labels = dict(alert.labels)
    return any(all(e.get(k) == labels.get(k) for k in identify) for e in elements)
