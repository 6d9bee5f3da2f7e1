"""Rule evaluation: levels, for, hysteresis, resolution, restore, and safe templates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import RuleConfig
from agent.model import Alert, AlertState, Level, Sample, fingerprint, make_labels
from agent.rules import (
    AlertStatus,
    CompiledRule,
    Evaluation,
    compile_rules,
    evaluate,
    format_value,
    render_template,
    status_from_alert,
)
from agent.series import SeriesStore

T0 = 1_700_000_000.0
DISK = {"device": "/dev/sda1", "mountpoint": "/"}


def rule(**fields: Any) -> CompiledRule:
    config = {"name": "disk_full", "expr": "disk_used_percent", "warning": 80, "critical": 90}
    config.update(fields)
    return compile_rules([RuleConfig.model_validate(config)], {"host": "web1"})[0]


class Cycle:
    """Feeds one value per evaluation into a store and carries the state between cycles."""

    def __init__(self, *rules: CompiledRule, labels: Mapping[str, str] = DISK) -> None:
        self.rules = list(rules)
        self.labels = make_labels(labels)
        self.store = SeriesStore(retention=3600)
        self.state: dict[str, AlertStatus] = {}

    def __call__(
        self, at: float, value: float | None, name: str = "disk_used_percent"
    ) -> Evaluation:
        if value is not None:
            self.store.add([Sample(name, self.labels, value, T0 + at)])
        result = evaluate(self.rules, self.store, T0 + at, self.state)
        self.state = result.state
        return result


def only(result: Evaluation) -> Alert:
    assert len(result.alerts) == 1, result.alerts
    return result.alerts[0]


# ---------------------------------------------------------------------------------------------
# Levels, labels, annotations


def test_fires_at_the_highest_crossed_level_with_its_threshold() -> None:
    cycle = Cycle(rule())
    assert cycle(0, 50).alerts == []
    warning = only(cycle(15, 85))
    assert (warning.state, warning.level, warning.threshold, warning.value) == (
        AlertState.FIRING, Level.WARNING, 80.0, 85.0,
    )  # fmt: skip
    assert warning.starts_at == T0 + 15 and warning.active_since == T0 + 15
    assert warning.ends_at is None
    critical = only(cycle(30, 95))
    assert (critical.level, critical.threshold) == (Level.CRITICAL, 90.0)
    assert critical.fingerprint == warning.fingerprint
    assert critical.starts_at == warning.starts_at


def test_low_is_bad_rules_use_less_than() -> None:
    cycle = Cycle(rule(expr="disk_free_percent", op="<", warning=20, critical=5, info=None))
    assert cycle(0, 50, "disk_free_percent").alerts == []
    assert only(cycle(15, 10, "disk_free_percent")).level is Level.WARNING
    assert only(cycle(30, 4, "disk_free_percent")).level is Level.CRITICAL
    assert only(cycle(45, 5, "disk_free_percent")).level is Level.WARNING  # 5 is not < 5


def test_labels_merge_series_static_rule_and_alertname() -> None:
    compiled = rule(labels={"team": "ops", "mountpoint": "overridden"})
    cycle = Cycle(compiled, labels={**DISK, "host": "nas1"})
    alert = only(cycle(0, 95))
    assert dict(alert.labels) == {
        "alertname": "disk_full",
        "device": "/dev/sda1",
        "host": "nas1",  # the series' own host wins over the agent's static one
        "mountpoint": "overridden",  # rule labels win over the series
        "team": "ops",
    }
    assert "severity" not in dict(alert.labels)
    assert alert.fingerprint == fingerprint("disk_full", alert.labels)


def test_static_labels_fill_in_missing_labels() -> None:
    alert = only(Cycle(rule())(0, 95))
    assert alert.label("host") == "web1"


def test_fingerprint_is_stable_across_processes_and_levels() -> None:
    first = only(Cycle(rule())(0, 85))
    second = only(Cycle(rule())(0, 99))
    labels = make_labels({**DISK, "host": "web1", "alertname": "disk_full"})
    assert first.fingerprint == second.fingerprint == fingerprint("disk_full", labels)
    assert first.fingerprint == "654a53101560e575"  # a pure function of rule name and labels


def test_annotations_are_rendered_with_labels_value_and_threshold() -> None:
    compiled = rule(
        annotations={"summary": "{mountpoint} on {host} is {value}% full (>{threshold}%)"}
    )
    alert = only(Cycle(compiled)(0, 93.456))
    assert dict(alert.annotations) == {"summary": "/ on web1 is 93.46% full (>90%)"}


def test_nan_values_never_alert() -> None:
    assert Cycle(rule())(0, float("nan")).alerts == []


# ---------------------------------------------------------------------------------------------
# for: pending, then firing


def test_for_keeps_the_alert_pending_until_it_has_held_long_enough() -> None:
    cycle = Cycle(rule(**{"for": "1m"}))
    pending = only(cycle(0, 95))
    assert pending.state is AlertState.PENDING
    assert pending.active_since == T0 and pending.starts_at == T0
    assert only(cycle(45, 85)).state is AlertState.PENDING  # level changes do not restart it
    firing = only(cycle(60, 95))
    assert firing.state is AlertState.FIRING
    assert firing.active_since == T0 and firing.starts_at == T0 + 60
    assert firing.fingerprint == pending.fingerprint


def test_pending_that_stops_is_dropped_silently() -> None:
    cycle = Cycle(rule(**{"for": "5m"}))
    assert only(cycle(0, 95)).state is AlertState.PENDING
    result = cycle(15, 10)
    assert result.alerts == [] and result.state == {}
    assert only(cycle(30, 95)).active_since == T0 + 30  # the clock starts again


# ---------------------------------------------------------------------------------------------
# Clearing: hysteresis, clear_for, resolution, disappearance


def test_resolved_is_reported_once_then_forgotten() -> None:
    cycle = Cycle(rule())
    fired = only(cycle(0, 95))
    resolved = only(cycle(15, 10))
    assert resolved.state is AlertState.RESOLVED
    assert resolved.ends_at == T0 + 15
    assert resolved.starts_at == fired.starts_at
    assert resolved.fingerprint == fired.fingerprint
    assert cycle.state == {}
    assert cycle(30, 10).alerts == []


def test_hysteresis_band_keeps_firing_at_the_lowest_level() -> None:
    cycle = Cycle(rule(clear=70))
    assert only(cycle(0, 95)).level is Level.CRITICAL
    band = only(cycle(15, 75))  # below warning, above clear
    assert (band.state, band.level, band.threshold, band.value) == (
        AlertState.FIRING, Level.WARNING, 80.0, 75.0,
    )  # fmt: skip
    assert only(cycle(30, 70)).state is AlertState.RESOLVED  # 70 is no longer > 70


def test_band_does_not_start_an_alert() -> None:
    assert Cycle(rule(clear=70))(0, 75).alerts == []


def test_clear_for_needs_the_value_to_stay_clear() -> None:
    cycle = Cycle(rule(clear_for="1m"))
    cycle(0, 95)
    clearing = only(cycle(15, 10))
    assert (clearing.state, clearing.level) == (AlertState.FIRING, Level.WARNING)
    assert only(cycle(45, 85)).state is AlertState.FIRING  # bad again: the clear timer resets
    assert only(cycle(60, 10)).state is AlertState.FIRING
    assert only(cycle(105, 10)).state is AlertState.FIRING  # 45 s clear so far
    resolved = only(cycle(120, 10))
    assert resolved.state is AlertState.RESOLVED and resolved.ends_at == T0 + 120
    assert resolved.value == 10.0


def test_de_escalates_when_the_value_drops_below_critical() -> None:
    cycle = Cycle(rule())
    assert only(cycle(0, 95)).level is Level.CRITICAL
    assert only(cycle(15, 85)).level is Level.WARNING


def test_disappearing_series_counts_as_clear() -> None:
    cycle = Cycle(rule(clear_for="30s"))
    fired = only(cycle(0, 95))
    # the series goes stale after five minutes without points
    assert only(cycle(200, None)).state is AlertState.FIRING
    clearing = only(cycle(400, None))
    assert clearing.state is AlertState.FIRING and clearing.value == 95.0
    resolved = only(cycle(430, None))
    assert resolved.state is AlertState.RESOLVED and resolved.value == 95.0
    assert resolved.labels == fired.labels and cycle.state == {}


def test_each_series_has_its_own_alert() -> None:
    store = SeriesStore(retention=3600)
    store.add(Sample("disk_used_percent", make_labels({"mountpoint": m}), v, T0)
              for m, v in (("/", 95), ("/home", 85), ("/tmp", 5)))  # fmt: skip
    result = evaluate([rule()], store, T0, {})
    levels = {a.label("mountpoint"): a.level for a in result.alerts}
    assert levels == {"/": Level.CRITICAL, "/home": Level.WARNING}
    assert len(result.state) == 2


def test_series_that_rule_labels_make_identical_give_one_alert() -> None:
    store = SeriesStore(retention=3600)
    store.add(Sample("disk_used_percent", make_labels({"mountpoint": m}), v, T0)
              for m, v in (("/", 95), ("/home", 85)))  # fmt: skip
    result = evaluate([rule(labels={"mountpoint": "any"})], store, T0, {})
    assert len(result.alerts) == len(result.state) == 1
    assert result.alerts[0].label("mountpoint") == "any"


def test_alerts_of_a_removed_rule_resolve() -> None:
    cycle = Cycle(rule())
    fired = only(cycle(0, 95))
    cycle.rules = []
    resolved = only(cycle(15, 95))
    assert resolved.state is AlertState.RESOLVED and resolved.fingerprint == fired.fingerprint
    assert cycle.state == {}


def test_evaluate_does_not_mutate_previous_state() -> None:
    cycle = Cycle(rule())
    cycle(0, 95)
    before = dict(cycle.state)
    evaluate(cycle.rules, cycle.store, T0 + 15, before)
    assert before == cycle.state


# ---------------------------------------------------------------------------------------------
# Restoring state after a restart


def test_restored_firing_alert_keeps_its_identity_and_start() -> None:
    cycle = Cycle(rule())
    fired = only(cycle(0, 95))
    restarted = Cycle(rule())
    restarted.state = {fired.fingerprint: status_from_alert(fired)}
    again = only(restarted(600, 92))
    assert again.state is AlertState.FIRING
    assert (again.fingerprint, again.starts_at) == (fired.fingerprint, T0)
    assert only(restarted(615, 10)).state is AlertState.RESOLVED


def test_restored_pending_alert_keeps_counting_from_its_start() -> None:
    cycle = Cycle(rule(**{"for": "10m"}))
    pending = only(cycle(0, 95))
    restarted = Cycle(rule(**{"for": "10m"}))
    restarted.state = {pending.fingerprint: status_from_alert(pending)}
    assert only(restarted(300, 95)).state is AlertState.PENDING
    fired = only(restarted(600, 95))
    assert fired.state is AlertState.FIRING and fired.active_since == T0


def test_status_round_trips_through_an_alert() -> None:
    fired = only(Cycle(rule())(0, 95))
    status = status_from_alert(fired)
    assert (status.state, status.level, status.starts_at, status.active_since) == (
        AlertState.FIRING, Level.CRITICAL, T0, T0,
    )  # fmt: skip
    assert (status.labels, status.value, status.threshold) == (fired.labels, 95.0, 90.0)


def test_restored_resolved_alert_is_ignored() -> None:
    cycle = Cycle(rule())
    cycle(0, 95)
    resolved = only(cycle(15, 10))
    later = Cycle(rule())
    later.state = {resolved.fingerprint: status_from_alert(resolved)}
    assert later(30, 10).alerts == [] and later.state == {}


# ---------------------------------------------------------------------------------------------
# Compilation


def test_compile_orders_levels_and_defaults_clear_to_the_lowest_threshold() -> None:
    compiled = rule(info=70)
    assert compiled.levels == ((Level.CRITICAL, 90.0), (Level.WARNING, 80.0), (Level.INFO, 70.0))
    assert compiled.clear == 70.0
    low = rule(op="<", warning=20, critical=5)
    assert low.clear == 20.0
    assert dict(rule().labels) == {"alertname": "disk_full"}


def test_compile_without_static_labels() -> None:
    config = RuleConfig.model_validate({"name": "r", "expr": "x", "critical": 1})
    assert compile_rules([config])[0].static_labels == ()


# ---------------------------------------------------------------------------------------------
# Templates


@pytest.mark.parametrize(
    "template",
    [
        "{__class__}",
        "{0.__init__}",
        "{{ 7*7 }}",
        "{host.__class__.__mro__}",
        "{host[0]}",
        "{{host}}",
        "{!r}",
        "{value:>10}",
        "{% for x in y %}",
        "{}",
    ],
)
def test_templates_never_evaluate_anything(template: str) -> None:
    assert render_template(template, {"host": "web1"}, 1.0, 2.0) == template


def test_templates_substitute_labels_value_and_threshold() -> None:
    labels = {"host": "web1", "mountpoint": "/var"}
    text = "{mountpoint} on {host}: {value} > {threshold} ({unknown})"
    assert (
        render_template(text, labels, 0.01234, 1e10)
        == "/var on web1: 0.01234 > 10000000000 ({unknown})"
    )


def test_substituted_text_is_not_rendered_again() -> None:
    labels = {"ifalias": "{value} {host}", "host": "sw1"}
    assert render_template("{ifalias} on {host}", labels, 5, None) == "{value} {host} on sw1"


def test_missing_value_or_threshold_stays_literal() -> None:
    assert render_template("{value}/{threshold}", {}, None, None) == "{value}/{threshold}"


@pytest.mark.parametrize(
    ("value", "text"),
    [(93.456, "93.46"), (512.0, "512"), (0.5, "0.5"), (1.0e-7, "1e-07"), (-2.25, "-2.25"),
     (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (float("nan"), "NaN"), (1e20, "1e+20")],
)  # fmt: skip
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


@given(
    st.text(max_size=60),
    st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), st.text(max_size=10)),
)
def test_render_template_never_raises(template: str, labels: dict[str, str]) -> None:
    out = render_template(template, labels, 1.5, None)
    if "{" not in template:
        assert out == template
