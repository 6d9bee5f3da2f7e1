"""Rules: compile `RuleConfig`s once, then evaluate them each cycle into alerts (pure).

Each (rule, label set) element walks a small state machine; `AlertStatus` is all it remembers
between cycles, so the caller owns the state and can persist or restore it:

    (nothing) --bad--> PENDING --bad for `for`--> FIRING --clear for `clear_for`--> RESOLVED
                 `for` = 0 fires at once;  PENDING --not bad--> dropped silently

While firing, a value between `clear` and the lowest threshold keeps the alert firing at the
lowest level (hysteresis); a series that disappears counts as clear. A resolved alert is
reported once, with `ends_at`, and then forgotten.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from agent import expr as expr_lang
from agent.config import RuleConfig
from agent.evaluate import SharedResults, evaluate_columns
from agent.model import Alert, AlertState, Labels, Level, fingerprint, make_labels
from agent.series import SeriesView

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to evaluate: parsed expression, ordered thresholds, fixed labels."""

    name: str
    expr: expr_lang.Expr
    op: str
    levels: tuple[tuple[Level, float], ...]
    """(level, threshold), most severe first."""
    clear: float
    for_: float
    clear_for: float
    static_labels: Labels
    """Fill in labels the series does not have (like Prometheus' external labels)."""
    labels: Labels
    """Rule labels and `alertname`: they override the series' labels."""
    annotations: Labels
    config: RuleConfig = field(compare=False, repr=False)
    identities: _Identities = field(init=False, compare=False, repr=False)
    """This rule's alert labels and fingerprint per series labels (a cache, see `_Identities`)."""

    def __post_init__(self) -> None:
        identities = _Identities(self.name, self.static_labels, self.labels)
        object.__setattr__(self, "identities", identities)

    @property
    def lowest(self) -> tuple[Level, float]:
        return self.levels[-1]

    def level_for(self, value: float) -> tuple[Level, float] | None:
        """The most severe (level, threshold) that `value` crosses, or None if none."""
        compare = _COMPARE[self.op]
        return next(((lv, th) for lv, th in self.levels if compare(value, th)), None)

    def is_clear(self, value: float) -> bool:
        """True once `value` is past the clear threshold, on the good side."""
        return not _COMPARE[self.op](value, self.clear)


@dataclass(frozen=True, slots=True)
class AlertStatus:
    """What the state machine remembers about one alert between cycles."""

    rule: str
    state: AlertState
    level: Level
    labels: Labels
    annotations: Labels
    value: float
    threshold: float | None
    active_since: float
    """When the condition started to hold (the pending start)."""
    starts_at: float | None = None
    """When it fired; None while pending."""
    last_bad: float | None = None
    """The last evaluation at which the condition held."""
    clear_since: float | None = None
    """While firing: when the current uninterrupted clear streak began."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One cycle's outcome: alerts to act on and the state to pass back in next cycle."""

    alerts: list[Alert]
    state: dict[str, AlertStatus]


def compile_rules(
    configs: Sequence[RuleConfig], static_labels: Mapping[str, str] | None = None
) -> list[CompiledRule]:
    """Parse each rule's expression and fix its thresholds and labels."""
    static = make_labels(static_labels or {})
    return [_compile(config, static) for config in configs]


def _compile(config: RuleConfig, static: Labels) -> CompiledRule:
    by_level = config.thresholds()
    levels = tuple(sorted(by_level.items(), key=lambda item: -item[0].rank))
    clear = config.clear if config.clear is not None else levels[-1][1]
    return CompiledRule(
        name=config.name,
        expr=expr_lang.parse(config.expr),
        op=config.op,
        levels=levels,
        clear=clear,
        for_=config.for_,
        clear_for=config.clear_for,
        static_labels=static,
        labels=make_labels({**config.labels, "alertname": config.name}),
        annotations=make_labels(config.annotations),
        config=config,
    )


def evaluate(
    rules: Sequence[CompiledRule],
    series: SeriesView,
    now: float,
    previous: Mapping[str, AlertStatus],
) -> Evaluation:
    """Evaluate every rule at `now` against the series and last cycle's state (no I/O)."""
    by_rule: dict[str, dict[str, AlertStatus]] = {}
    for fp, status in previous.items():
        if status.state is not AlertState.RESOLVED:
            by_rule.setdefault(status.rule, {})[fp] = status
    result = Evaluation([], {})
    # rules share sub-expressions (the same indicator at two thresholds, a common denominator):
    # each is computed once this cycle; the next cycle starts afresh (see `SharedResults`)
    shared = SharedResults(series, now)
    for rule in rules:
        _evaluate_rule(rule, series, now, by_rule.pop(rule.name, {}), result, shared)
    for orphans in by_rule.values():  # the rule left the config: its alerts end now
        for fp, status in orphans.items():
            if status.state is AlertState.FIRING:
                _record(fp, replace(status, state=AlertState.RESOLVED), now, result)
    return result


@dataclass(frozen=True, slots=True)
class _Seen:
    """One element as this cycle saw it; `value` is None when its series is gone."""

    labels: Labels
    value: float | None
    level: tuple[Level, float] | None


def _evaluate_rule(
    rule: CompiledRule,
    series: SeriesView,
    now: float,
    prev: dict[str, AlertStatus],
    out: Evaluation,
    shared: SharedResults,
) -> None:
    bad, lowest = _COMPARE[rule.op], rule.lowest[1]
    # a pending alert is dropped whether its element is fine or gone, so only firing ones
    # need their good elements identified; without any, the hot path skips good elements
    firing = any(s.state is AlertState.FIRING for s in prev.values())
    seen: set[str] = set()
    vector = evaluate_columns(rule.expr, series, now, shared)  # read-only: rules share values
    elements: Iterable[tuple[Labels, float]] = vector.items()
    if not firing:  # the usual case: pick the bad elements out in C (a NaN is never bad)
        elements = itertools.compress(elements, map(bad, vector.values, itertools.repeat(lowest)))
    identities = rule.identities
    for labels, value in elements:
        is_bad = bad(value, lowest)
        if not (firing or is_bad) or math.isnan(value):
            continue
        alert_labels, fp = identities[labels]
        if fp in seen:
            continue  # rule labels made two series one alert: the first one speaks for it
        seen.add(fp)
        before = prev.pop(fp, None)
        if before is None and not is_bad:
            continue
        step = _step(rule, before, _Seen(alert_labels, value, rule.level_for(value)), now)
        if step is not None:
            _record(fp, step, now, out)
    for fp, status in prev.items():  # no element this cycle: the series went away
        step = _step(rule, status, _Seen(status.labels, None, None), now)
        if step is not None:
            _record(fp, step, now, out)


def _identity(rule: str, static: Labels, fixed: Labels, series: Labels) -> tuple[Labels, str]:
    """Alert labels and fingerprint of one element."""
    merged = dict(static)
    merged.update(series)
    merged.update(fixed)
    labels = make_labels(merged)
    return labels, fingerprint(rule, labels)


class _Identities(dict[Labels, tuple[Labels, str]]):
    """Series labels -> `_identity` for one rule, computed on first sight.

    Every element with a firing alert in its rule needs its fingerprint every cycle (a sha256):
    one dict per rule keeps a lookup to one hash, where a shared LRU cache smaller than the
    fleet would evict and recompute. Cleared past `_IDENTITY_LIMIT` so series churn is bounded.
    """

    __slots__ = ("fixed", "rule", "static")

    def __init__(self, rule: str, static: Labels, fixed: Labels) -> None:
        super().__init__()
        self.rule, self.static, self.fixed = rule, static, fixed

    def __missing__(self, series: Labels) -> tuple[Labels, str]:
        if len(self) >= _IDENTITY_LIMIT:
            self.clear()
        identity = self[series] = _identity(self.rule, self.static, self.fixed, series)
        return identity


_IDENTITY_LIMIT = 1 << 18


def _record(fp: str, status: AlertStatus, now: float, out: Evaluation) -> None:
    out.alerts.append(_alert(fp, status, now))
    if status.state is not AlertState.RESOLVED:
        out.state[fp] = status


def _step(
    rule: CompiledRule, prev: AlertStatus | None, seen: _Seen, now: float
) -> AlertStatus | None:
    """Next status of one element; None when there is nothing to remember or report."""
    if prev is None or prev.state is not AlertState.FIRING:
        return _pending_or_firing(rule, prev, seen, now)
    if seen.level is not None:
        return _firing(rule, prev, seen, seen.level, last_bad=now, clear_since=None)
    if seen.value is not None and not rule.is_clear(seen.value):  # the hysteresis band
        return _firing(rule, prev, seen, rule.lowest, prev.last_bad, clear_since=None)
    since = prev.clear_since if prev.clear_since is not None else now
    status = _firing(rule, prev, seen, rule.lowest, prev.last_bad, clear_since=since)
    return replace(status, state=AlertState.RESOLVED) if now - since >= rule.clear_for else status


def _pending_or_firing(
    rule: CompiledRule, prev: AlertStatus | None, seen: _Seen, now: float
) -> AlertStatus | None:
    if seen.level is None or seen.value is None:
        return None  # not bad (any more): a pending alert that never fired goes silently
    (level, threshold), since = seen.level, prev.active_since if prev is not None else now
    fired = now - since >= rule.for_
    return AlertStatus(
        rule=rule.name,
        state=AlertState.FIRING if fired else AlertState.PENDING,
        level=level,
        labels=seen.labels,
        annotations=_annotations(rule, seen.labels, seen.value, threshold),
        value=seen.value,
        threshold=threshold,
        active_since=since,
        starts_at=now if fired else None,
        last_bad=now,
    )


def _firing(
    rule: CompiledRule,
    prev: AlertStatus,
    seen: _Seen,
    level: tuple[Level, float],
    last_bad: float | None,
    clear_since: float | None,
) -> AlertStatus:
    value = prev.value if seen.value is None else seen.value  # a gone series keeps its last value
    return replace(
        prev,
        level=level[0],
        labels=seen.labels,
        annotations=_annotations(rule, seen.labels, value, level[1]),
        value=value,
        threshold=level[1],
        last_bad=last_bad,
        clear_since=clear_since,
    )


def _annotations(rule: CompiledRule, labels: Labels, value: float, threshold: float) -> Labels:
    names = dict(labels)
    return tuple((k, render_template(t, names, value, threshold)) for k, t in rule.annotations)


def _alert(fp: str, status: AlertStatus, now: float) -> Alert:
    resolved = status.state is AlertState.RESOLVED
    return Alert(
        fingerprint=fp,
        rule=status.rule,
        state=status.state,
        level=status.level,
        labels=status.labels,
        annotations=status.annotations,
        value=status.value,
        starts_at=status.starts_at if status.starts_at is not None else status.active_since,
        ends_at=now if resolved else None,
        active_since=status.active_since,
        threshold=status.threshold,
    )


def status_from_alert(alert: Alert) -> AlertStatus:
    """Rebuild the state machine's memory from a stored alert (after a restart)."""
    firing = alert.state is AlertState.FIRING
    return AlertStatus(
        rule=alert.rule,
        state=alert.state,
        level=alert.level,
        labels=alert.labels,
        annotations=alert.annotations,
        value=alert.value,
        threshold=alert.threshold,
        active_since=alert.active_since if alert.active_since is not None else alert.starts_at,
        starts_at=alert.starts_at if firing else None,
    )


# ---------------------------------------------------------------------------------------------
# Templates

_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
"""`{name}` only: no attribute access, no indexing, no expressions; `{{name}}` stays literal."""


def render_template(
    template: str, labels: Mapping[str, str], value: float | None, threshold: float | None
) -> str:
    """Replace `{label}`, `{value}` and `{threshold}`; leave anything else exactly as written."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "value" and value is not None:
            return format_value(value)
        if name == "threshold" and threshold is not None:
            return format_value(threshold)
        return labels.get(name, match.group(0))

    return _PLACEHOLDER.sub(substitute, template)


def format_value(value: float) -> str:
    """A number as a person reads it: `93.46`, `512`, `0.0123`, `+Inf`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if abs(value) >= 1e15:
        return f"{value:.4g}"
    if value == int(value):
        return str(int(value))
    if abs(value) >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"
