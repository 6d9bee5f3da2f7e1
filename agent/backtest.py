"""Backtest: replay recorded samples through a config and count what it would have produced.

`backtest(config, history, start, end)` feeds time-ordered samples into a `SeriesStore` and runs
`Pipeline.run` every `step` seconds, exactly as the agent's evaluation loop does. Its actions are
then simulated with the agent's rules (`runtime.Agent._act_sync`, `remediation.runs`,
`remediation.tickets.local`) but without a store, a runbook or a desk:

- an *alert* is one activation (fingerprint, `starts_at`) that reached `firing`;
- a firing alert that is silenced or inhibited starts nothing; its first unsuppressed firing
  cycle starts its run and its ticket (once per activation, as the store's activation key does);
- a rule with `actions.runbook` makes one run per activation: `approval: auto` is an automatic
  run, `required` an approval a person must give; `runs_by_policy` adds what the risk matrix's
  policy would ask for the same runs;
- a rule with `actions.ticket` opens one ticket per fingerprint; an activation while it is open
  counts an occurrence; the alert resolving resolves it (so a clear between two firings gives
  two tickets). Nobody works tickets during a replay: one still open past its response or
  resolution due time is a breach of that SLA.

Pure: no clock, no I/O. Where the history comes from (Prometheus, a file) is
`agent.backtest_cli`'s business; `selectors` and `lookback` say what to fetch.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from agent import expr as expr_lang
from agent.config import AgentConfig, RuleConfig
from agent.errors import OpsWatchError
from agent.expr_ast import Expr, RangeSelector, Selector, walk
from agent.flap import FlapState
from agent.model import Alert, AlertState, Sample
from agent.pipeline import CycleState, Pipeline
from agent.risk_config import SilenceConfig
from agent.series import SeriesStore

MAX_EVALUATIONS = 1_000_000


class BacktestError(OpsWatchError):
    """The history could not be read, or the replay was asked for something impossible."""


@dataclass
class RuleCounts:
    """What one rule (or all of them) would have produced over the replayed time."""

    alerts: int = 0
    suppressed: int = 0
    """Activations silenced or inhibited for as long as they fired: no run, no ticket."""
    tickets: int = 0
    occurrences: int = 0
    approvals: int = 0
    automatic_runs: int = 0
    response_breaches: int = 0
    resolution_breaches: int = 0
    flapping: int = 0
    """Times an alert of the rule started flapping."""
    silenced_seconds: float = 0.0
    inhibited_seconds: float = 0.0
    firing_at_end: int = 0
    open_tickets_at_end: int = 0
    tickets_by_priority: Counter[str] = field(default_factory=Counter)
    runs_by_policy: Counter[str] = field(default_factory=Counter)

    def add(self, other: RuleCounts) -> None:
        """Add another rule's counts to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able values (counters as sorted dicts)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["tickets_by_priority"] = dict(sorted(self.tickets_by_priority.items()))
        out["runs_by_policy"] = dict(sorted(self.runs_by_policy.items()))
        return out


@dataclass(frozen=True)
class BacktestReport:
    """Per-rule counts of one replay, with the time range and step it covered."""

    start: float
    end: float
    step: float
    evaluations: int
    samples: int
    rules: Mapping[str, RuleCounts]

    @property
    def totals(self) -> RuleCounts:
        """The sum over every rule."""
        total = RuleCounts()
        for counts in self.rules.values():
            total.add(counts)
        return total

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-able data (what `--json` prints)."""
        return {
            "start": self.start, "end": self.end, "step": self.step,
            "evaluations": self.evaluations, "samples": self.samples,
            "rules": {name: c.to_json() for name, c in self.rules.items()},
            "totals": self.totals.to_json(),
        }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The replay


@dataclass
class _Ticket:
    rule: str
    activation: float
    response_due: float
    resolution_due: float
    response_breached: bool = False
    resolution_breached: bool = False


@dataclass
class _Activation:
    rule: str
    starts_at: float
    acted: bool = False
    suppressed: bool = False


class _Replay:
    """The simulated store, run service and desk: counts instead of side effects."""

    def __init__(self, config: AgentConfig, step: float) -> None:
        self.config = config
        self.step = step
        self.actions = {r.name: r.actions for r in config.rules}
        self.counts = {r.name: RuleCounts() for r in config.rules}
        self.tickets: dict[str, _Ticket] = {}
        self.activations: dict[str, _Activation] = {}

    def cycle(self, alerts: Sequence[Alert], flaps: tuple[_Flaps, _Flaps], now: float) -> None:
        """Act on one cycle's alerts as the agent would, then check the SLAs at `now`."""
        for alert in alerts:
            if alert.state is AlertState.FIRING:
                self._firing(alert, now)
            elif alert.state is AlertState.RESOLVED:
                self._ended(alert.fingerprint)
                self.tickets.pop(alert.fingerprint, None)
        active = {a.fingerprint for a in alerts if a.state is not AlertState.RESOLVED}
        for fp in [fp for fp in self.tickets if fp not in active]:  # LocalDesk.reconcile
            del self.tickets[fp]
        self._count_flaps(*flaps)
        self.check_slas(now)

    def _firing(self, alert: Alert, now: float) -> None:
        counts = self.counts[alert.rule]
        act = self.activations.get(alert.fingerprint)
        if act is None or act.starts_at != alert.starts_at:
            self._ended(alert.fingerprint)
            act = self.activations[alert.fingerprint] = _Activation(alert.rule, alert.starts_at)
            counts.alerts += 1
        counts.silenced_seconds += self.step if alert.silenced_by else 0.0
        counts.inhibited_seconds += self.step if alert.inhibited_by else 0.0
        if alert.suppressed:
            act.suppressed = True
        elif not act.acted:
            act.acted = True
            self._run(alert, counts)
            self._ticket(alert, counts, now)

    def _run(self, alert: Alert, counts: RuleCounts) -> None:
        actions = self.actions[alert.rule]
        if actions.runbook is None:
            return
        if actions.approval == "auto":
            counts.automatic_runs += 1
        else:
            counts.approvals += 1
        counts.runs_by_policy[alert.policy or "none"] += 1

    def _ticket(self, alert: Alert, counts: RuleCounts, now: float) -> None:
        if not self.actions[alert.rule].ticket:
            return
        ticket = self.tickets.get(alert.fingerprint)
        if ticket is not None:
            if ticket.activation != alert.starts_at:
                ticket.activation = alert.starts_at
                counts.occurrences += 1
            return
        sla = self.config.risk.priorities[alert.priority]
        self.tickets[alert.fingerprint] = _Ticket(
            alert.rule, alert.starts_at, now + sla.response, now + sla.resolution
        )
        counts.tickets += 1
        counts.tickets_by_priority[alert.priority.value] += 1

    def _ended(self, fp: str) -> None:
        act = self.activations.pop(fp, None)
        if act is not None and act.suppressed and not act.acted:
            self.counts[act.rule].suppressed += 1

    def check_slas(self, now: float) -> None:
        """Count each open ticket's first moment past its response and resolution due times."""
        for ticket in self.tickets.values():
            counts = self.counts[ticket.rule]
            if now > ticket.response_due and not ticket.response_breached:
                ticket.response_breached = True
                counts.response_breaches += 1
            if now > ticket.resolution_due and not ticket.resolution_breached:
                ticket.resolution_breached = True
                counts.resolution_breaches += 1

    def _count_flaps(self, before: _Flaps, after: _Flaps) -> None:
        for fp, state in after.items():
            was = before.get(fp)
            started = state.flapping and not (was is not None and was.flapping)
            if started and state.rule in self.counts:
                self.counts[state.rule].flapping += 1

    def finish(self, end: float) -> None:
        """Close the replay at `end`: what still fires, what is still open, the last SLA check."""
        self.check_slas(end)
        for act in self.activations.values():
            self.counts[act.rule].firing_at_end += 1
        for fp in list(self.activations):
            self._ended(fp)
        for ticket in self.tickets.values():
            self.counts[ticket.rule].open_tickets_at_end += 1


_Flaps = Mapping[str, FlapState]


class _Feed:
    """Hands a time-ordered history to the series store up to each evaluation time."""

    def __init__(self, history: Iterable[Sample]) -> None:
        self._rest: Iterator[Sample] = iter(history)
        self._next = next(self._rest, None)
        self.count = 0

    def until(self, store: SeriesStore, now: float) -> None:
        batch = []
        while self._next is not None and self._next.timestamp <= now:
            batch.append(self._next)
            self._next = next(self._rest, None)
        store.add(batch)
        self.count += len(batch)


def evaluation_times(start: float, end: float, step: float) -> list[float]:
    """`start`, `start + step`, ... up to `end`, on whole milliseconds like Prometheus' times.

    Rounded so that a sample Prometheus stamps at an evaluation time is exactly that float.
    """
    if not (math.isfinite(start) and math.isfinite(end) and step >= 0.001):
        raise BacktestError("start and end must be finite and the step at least 1ms")
    if end < start:
        raise BacktestError("the end of a backtest must not be before its start")
    count = math.floor((end - start) / step + 1e-9) + 1
    if count > MAX_EVALUATIONS:
        raise BacktestError(f"{count} evaluations (limit {MAX_EVALUATIONS}): use a larger step")
    return [round(start + i * step, 3) for i in range(count)]


def backtest(
    config: AgentConfig,
    history: Iterable[Sample],
    start: float,
    end: float,
    step: float | None = None,
    extra_silences: Sequence[SilenceConfig] = (),
) -> BacktestReport:
    """Replay time-ordered samples through `config` and count what it would have produced."""
    step = step or config.evaluation.interval
    times = evaluation_times(start, end, step)
    pipeline = Pipeline(config, {"host": config.agent.name})
    store = SeriesStore(config.evaluation.retention)
    feed, replay, state = _Feed(history), _Replay(config, step), CycleState()
    for now in times:
        feed.until(store, now)
        store.prune(now)
        cycle = pipeline.run(store, now, state, extra_silences)
        replay.cycle(cycle.alerts, (state.flaps, cycle.state.flaps), now)
        state = cycle.state
    replay.finish(end)
    return BacktestReport(start, end, step, len(times), feed.count, replay.counts)


# ---------------------------------------------------------------------------------------------
# What history the rules need


def _nodes(rules: Sequence[RuleConfig]) -> Iterator[Expr]:
    for rule in rules:
        yield from walk(expr_lang.parse(rule.expr))


def lookback(config: AgentConfig, step: float) -> float:
    """History needed before the first evaluation: the longest window (within retention)."""
    ranges = [n.range for n in _nodes(config.rules) if isinstance(n, RangeSelector)]
    wanted = min(max([step, *ranges]), config.evaluation.retention)
    return math.ceil(wanted / step - 1e-9) * step


def selectors(rules: Sequence[RuleConfig]) -> list[str]:
    """One PromQL selector per metric name the rules read.

    Only `=` and `!=` matchers go to Prometheus (regexes are RE2 there, Python here); our own
    evaluator applies every matcher again. A name selected with different matchers is fetched
    whole.
    """
    found: dict[str, set[tuple[tuple[str, str, str], ...]]] = {}
    for node in _nodes(rules):
        if isinstance(node, Selector):
            kept = tuple((m.name, m.op, m.value) for m in node.matchers if m.op in ("=", "!="))
            found.setdefault(node.name, set()).add(kept)
    return [
        _promql(name, next(iter(s)) if len(s) == 1 else ()) for name, s in sorted(found.items())
    ]


def _promql(name: str, matchers: tuple[tuple[str, str, str], ...]) -> str:
    if not matchers:
        return name
    # a JSON string is a valid PromQL string literal (same escapes)
    inner = ", ".join(f"{label}{op}{json.dumps(value)}" for label, op, value in matchers)
    return f"{name}{{{inner}}}"
