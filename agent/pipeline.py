"""One evaluation cycle from series to decided alerts, as a pure function of its inputs.

    rules.evaluate → flap.track → risk.assess → silences → inhibition

The agent and the backtest both run this; neither the clock nor any I/O is read here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agent import events, flap, inhibit, risk, rules, silences
from agent.config import AgentConfig
from agent.evaluate import Fit, first_prediction, window_fits
from agent.expr_ast import metric_names
from agent.model import Alert, Event, Labels
from agent.risk_config import SilenceConfig
from agent.rules import AlertStatus
from agent.series import SeriesView

Fits = Mapping[Labels, Fit]


@dataclass(frozen=True)
class CycleState:
    """What one cycle hands the next: the alert state machine and the flap history."""

    alerts: Mapping[str, AlertStatus] = field(default_factory=dict)
    flaps: Mapping[str, flap.FlapState] = field(default_factory=dict)
    events: Mapping[str, events.EventStatus] = field(default_factory=dict)
    """Firing alerts of event rules (they have no series to re-evaluate)."""


@dataclass(frozen=True)
class Cycle:
    alerts: list[Alert]
    state: CycleState
    capped: Mapping[str, int] = field(default_factory=dict)
    """Events per event rule that found it at `max_alerts` this cycle."""


class Pipeline:
    """The rules and risk settings of one config, ready to run cycle after cycle."""

    def __init__(self, config: AgentConfig, static_labels: Mapping[str, str]) -> None:
        self.config = config
        self.rules = rules.compile_rules(config.rules, static_labels)
        self.event_rules = events.compile_event_rules(config.event_rules, static_labels)
        self.by_name = {r.name: r for r in self.rules}
        self.impacts = {r.name: r.risk for r in config.rules}
        self.impacts.update((r.name, r.risk) for r in config.event_rules)
        self.flap_settings = {r.name: r.config.risk.flap for r in self.rules}
        clears = [r.clear_expr for r in self.event_rules if r.clear_expr is not None]
        self.metric_names = frozenset().union(
            *(metric_names(r.expr) for r in self.rules), *(metric_names(e) for e in clears)
        )
        """What the rules read: only these series are kept in memory for window functions."""
        # Assets are matched on the alert's labels plus the host's own (e.g. criticality: high).
        self.host_labels = dict(config.agent.labels)

    def run(
        self,
        series: SeriesView,
        now: float,
        state: CycleState,
        extra_silences: Sequence[SilenceConfig] = (),
        happened: Sequence[Event] = (),
    ) -> Cycle:
        """Evaluate, then rate, silence and inhibit every alert of this cycle."""
        result = rules.evaluate(self.rules, series, now, state.alerts)
        fired = events.evaluate_events(self.event_rules, happened, series, now, state.events)
        result = dataclasses.replace(result, alerts=[*result.alerts, *fired.alerts])
        flaps = flap.track(
            state.flaps, flap.observations(result.alerts, self.by_name), self.flap_settings
        )
        fits = self._fits(result.alerts, series, now)
        assessed = [self._assess(a, fits.get(a.rule), flaps) for a in result.alerts]
        active = silences.active_silences([*self.config.silences, *extra_silences], now)
        silenced = [
            dataclasses.replace(a, silenced_by=silences.silenced_by(a, active, now))
            for a in assessed
        ]
        hidden = inhibit.inhibited_by(silenced, self.config.inhibit_rules)
        decided = [dataclasses.replace(a, inhibited_by=hidden.get(a.fingerprint)) for a in silenced]
        return Cycle(decided, CycleState(result.state, flaps, fired.state), fired.capped)

    def _fits(self, alerts: Sequence[Alert], series: SeriesView, now: float) -> dict[str, Fits]:
        """Fits behind `time_to_threshold` rules that have alerts, once per rule per cycle."""
        out: dict[str, Fits] = {}
        for name in {a.rule for a in alerts}:
            rule = self.by_name.get(name)
            call = first_prediction(rule.expr) if rule is not None else None
            if rule is not None and call is not None and call.func == "time_to_threshold":
                out[name] = window_fits(rule.expr, series, now)
        return out

    def _assess(
        self, alert: Alert, fits: Fits | None, flaps: Mapping[str, flap.FlapState]
    ) -> Alert:
        rule = self.by_name.get(alert.rule)
        settings = self.impacts.get(alert.rule)
        prediction = None
        if fits is not None and rule is not None:
            horizon = (settings.horizon if settings else None) or rule.lowest[1]
            prediction = risk.prediction_for(alert, fits, horizon)
        labels = {**self.host_labels, **dict(alert.labels)}
        assessment = risk.assess(
            alert,
            settings.impact if settings else None,
            risk.asset_criticality(labels, self.config.assets),
            self.config.risk,
            prediction,
        )
        state = flaps.get(alert.fingerprint)
        rated = risk.apply(alert, assessment)
        return dataclasses.replace(
            rated, policy=assessment.policy.value, flapping=bool(state and state.flapping)
        )
