"""Event rules: a trap fires an alert; a later event, a polled value or time clears it."""

from __future__ import annotations

import pytest

from agent import config
from agent.events import EventStatus, compile_event_rules, evaluate_events
from agent.model import AlertState, Event, make_labels, sample
from agent.pipeline import CycleState, Pipeline
from agent.series import SeriesStore

NOW = 1_700_000_000.0
RULES = """
event_rules:
  - name: InterfaceDown
    event: {name: linkDown}
    identify: [target, ifIndex]
    clear_event: {name: linkUp}
    clear_expr: ifOperStatus == 1
    level: critical
    annotations: {summary: "{ifName} on {target} went down"}
    actions: {ticket: true}
  - name: AuthFailures
    event: {name: authenticationFailure, match: ['target=~"core.*"']}
    resolve_after: 15m
"""


def trap(name: str, at: float, **labels: str) -> Event:
    return Event(
        name, make_labels(labels), make_labels({"1.3.6.1.2.1.2.2.1.7.3": "1"}), at, "snmp_trap"
    )


def rules() -> list:  # type: ignore[type-arg]
    cfg = config.parse(RULES)
    return compile_event_rules(cfg.event_rules, {"host": "poller1"})


def link(state: str, at: float, index: str = "3") -> Event:
    return trap(state, at, target="sw1", ifIndex=index, ifName=f"Gi0/{index}")


def test_link_down_fires_and_link_up_clears() -> None:
    compiled, store = rules(), SeriesStore(retention=3600)
    fired = evaluate_events(compiled, [link("linkDown", NOW)], store, NOW + 1, {})
    (alert,) = fired.alerts
    assert alert.state is AlertState.FIRING and alert.starts_at == NOW
    assert dict(alert.labels) == {"alertname": "InterfaceDown", "host": "poller1", "target": "sw1",
                                  "ifIndex": "3"}  # fmt: skip
    assert dict(alert.annotations)["summary"] == "{ifName} on sw1 went down"
    again = evaluate_events(compiled, [link("linkDown", NOW + 5)], store, NOW + 6, fired.state)
    assert [a.fingerprint for a in again.alerts] == [alert.fingerprint]
    assert again.alerts[0].starts_at == NOW, "a repeated trap is the same firing"
    cleared = evaluate_events(compiled, [link("linkUp", NOW + 30)], store, NOW + 31, again.state)
    (resolved,) = cleared.alerts
    assert resolved.state is AlertState.RESOLVED and resolved.ends_at == NOW + 30
    assert cleared.state == {}


def test_other_interfaces_and_unmatched_events_do_not_interfere() -> None:
    compiled, store = rules(), SeriesStore(retention=3600)
    fired = evaluate_events(compiled, [link("linkDown", NOW)], store, NOW, {})
    up_elsewhere = evaluate_events(
        compiled, [link("linkUp", NOW + 1, "4")], store, NOW + 1, fired.state
    )
    assert [a.state for a in up_elsewhere.alerts] == [AlertState.FIRING]
    edge = trap("authenticationFailure", NOW, target="edge1")
    assert evaluate_events(compiled, [edge], store, NOW, {}).alerts == []


def test_a_polled_value_clears_a_trap_alert() -> None:
    compiled, store = rules(), SeriesStore(retention=3600)
    fired = evaluate_events(compiled, [link("linkDown", NOW)], store, NOW, {})
    store.add([sample("ifOperStatus", 2.0, NOW + 10, target="sw1", ifIndex="3")])
    still = evaluate_events(compiled, [], store, NOW + 10, fired.state)
    assert [a.state for a in still.alerts] == [AlertState.FIRING]
    store.add([sample("ifOperStatus", 1.0, NOW + 20, target="sw1", ifIndex="3")])
    polled = evaluate_events(compiled, [], store, NOW + 20, still.state)
    assert [a.state for a in polled.alerts] == [AlertState.RESOLVED]


def test_time_resolves_alerts_that_have_no_clearing_event() -> None:
    compiled, store = rules(), SeriesStore(retention=3600)
    burst = [trap("authenticationFailure", NOW + i, target="core1") for i in range(3)]
    fired = evaluate_events(compiled, burst, store, NOW + 3, {})
    assert len(fired.alerts) == 1
    early = evaluate_events(compiled, [], store, NOW + 2 + 899, fired.state)
    assert [a.state for a in early.alerts] == [AlertState.FIRING]
    late = evaluate_events(compiled, [], store, NOW + 2 + 900, fired.state)
    assert [a.state for a in late.alerts] == [AlertState.RESOLVED]


def test_event_alerts_go_through_the_risk_matrix_and_survive_a_restart() -> None:
    cfg = config.parse(RULES)
    pipe = Pipeline(cfg, {"host": "poller1"})
    cycle = pipe.run(
        SeriesStore(retention=3600), NOW, CycleState(), happened=[link("linkDown", NOW)]
    )
    (alert,) = cycle.alerts
    assert (alert.level.value, alert.priority.value, alert.likelihood) == (
        "critical",
        "P1",
        "almost_certain",
    )
    restored = {alert.fingerprint: EventStatus.restored(alert)}  # as the store returns it
    later = pipe.run(SeriesStore(retention=3600), NOW + 60, CycleState(events=restored))
    assert [a.state for a in later.alerts] == [AlertState.FIRING]


def test_config_errors_for_event_rules() -> None:
    import pytest

    from agent.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        config.parse("event_rules:\n  - name: X\n    event: {name: linkDown}\n")
    assert "say how the alert clears" in str(info.value)
    with pytest.raises(ConfigError) as info:
        config.parse("event_rules:\n  - name: X\n    event: {name: linkDown}\n    clear_expr: up\n")
    assert "clear_expr needs identify" in str(info.value)


def test_a_storm_of_new_identities_stops_at_max_alerts_and_is_counted() -> None:
    level = "    level: critical\n"
    capped_rules = RULES.replace(level, level + "    max_alerts: 5\n")
    cfg = config.parse(capped_rules)
    compiled, store = compile_event_rules(cfg.event_rules), SeriesStore(retention=3600)
    storm = [link("linkDown", NOW + i, index=str(i)) for i in range(200)]
    fired = evaluate_events(compiled, storm, store, NOW + 300, {})
    assert len(fired.alerts) == 5 and fired.capped == {"InterfaceDown": 195}
    # a repeat of a firing one is not capped; a clear makes room for a new one
    repeat = evaluate_events(compiled, [link("linkDown", NOW + 301, "0")], store, NOW + 302,
                             fired.state)  # fmt: skip
    assert len(repeat.state) == 5 and not repeat.capped
    events = [link("linkUp", NOW + 303, "0"), link("linkDown", NOW + 304, "150")]
    room = evaluate_events(compiled, events, store, NOW + 305, repeat.state)
    firing = {dict(a.labels)["ifIndex"] for a in room.alerts if a.state is AlertState.FIRING}
    assert firing == {"1", "2", "3", "4", "150"} and not room.capped


def test_max_alerts_must_be_positive() -> None:
    with pytest.raises(config.ConfigError, match=r"event_rules\[0\]\.max_alerts"):
        config.parse(RULES.replace("    level: critical\n", "    max_alerts: 0\n"))
