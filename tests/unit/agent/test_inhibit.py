"""Inhibition: a firing source hides matching targets that share the `equal` labels."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.inhibit import inhibited_by
from agent.model import Alert, AlertState, Level, make_labels
from agent.risk_config import InhibitRuleConfig


def alert(fp: str, name: str, /, state: AlertState = AlertState.FIRING,
          level: Level = Level.CRITICAL, **labels: str) -> Alert:  # fmt: skip
    return Alert(
        fingerprint=fp, rule=name, state=state, level=level,
        labels=make_labels({"alertname": name, **labels}), annotations=(), value=1.0,
        starts_at=0.0,
    )  # fmt: skip


def rule(source: list[str], target: list[str], equal: list[str]) -> InhibitRuleConfig:
    data: dict[str, Any] = {"source_matchers": source, "target_matchers": target, "equal": equal}
    return InhibitRuleConfig.model_validate(data)


DEVICE_DOWN = rule(['alertname="DeviceDown"'], ['alertname=~"Interface.*"'], ["target"])
HOST_DOWN = rule(["alertname=HostDown"], ['alertname!="HostDown"'], ["host"])


def test_a_down_device_hides_its_interface_alerts_and_says_by_what() -> None:
    alerts = [
        alert("dev1", "DeviceDown", target="sw1"),
        alert("if1", "InterfaceDown", target="sw1", ifName="ge-0/0/1"),
        alert("if2", "InterfaceErrors", target="sw1", ifName="ge-0/0/2"),
        alert("if3", "InterfaceDown", target="sw2", ifName="ge-0/0/1"),
    ]
    assert inhibited_by(alerts, [DEVICE_DOWN]) == {"if1": "dev1", "if2": "dev1"}


def test_a_down_host_hides_its_service_alerts_but_not_other_hosts() -> None:
    alerts = [
        alert("h1", "HostDown", host="web1"),
        alert("s1", "ProcessDown", host="web1", name="nginx"),
        alert("s2", "ProcessDown", host="web2", name="nginx"),
    ]
    assert inhibited_by(alerts, [HOST_DOWN]) == {"s1": "h1"}


def test_only_firing_sources_inhibit_but_pending_targets_are_hidden() -> None:
    pending_source = [
        alert("dev1", "DeviceDown", AlertState.PENDING, target="sw1"),
        alert("if1", "InterfaceDown", target="sw1"),
    ]
    assert inhibited_by(pending_source, [DEVICE_DOWN]) == {}
    resolved_source = [alert("dev1", "DeviceDown", AlertState.RESOLVED, target="sw1"),
                       alert("if1", "InterfaceDown", target="sw1")]  # fmt: skip
    assert inhibited_by(resolved_source, [DEVICE_DOWN]) == {}
    pending_target = [alert("dev1", "DeviceDown", target="sw1"),
                      alert("if1", "InterfaceDown", AlertState.PENDING, target="sw1")]  # fmt: skip
    assert inhibited_by(pending_target, [DEVICE_DOWN]) == {"if1": "dev1"}


def test_critical_hides_warning_of_the_same_alert_by_severity() -> None:
    by_level = rule(['severity="critical"'], ['severity="warning"'], ["alertname", "mountpoint"])
    alerts = [
        alert("c", "DiskFull", level=Level.CRITICAL, mountpoint="/"),
        alert("w1", "DiskFull", level=Level.WARNING, mountpoint="/"),
        alert("w2", "DiskFull", level=Level.WARNING, mountpoint="/var"),
    ]
    assert inhibited_by(alerts, [by_level]) == {"w1": "c"}


def test_an_alert_never_inhibits_itself_but_a_twin_can() -> None:
    both_sides = rule(['alertname="Down"'], ['alertname="Down"'], ["site"])
    assert inhibited_by([alert("a", "Down", site="x")], [both_sides]) == {}
    twins = [alert("a", "Down", site="x"), alert("b", "Down", site="x")]
    assert inhibited_by(twins, [both_sides]) == {"a": "b", "b": "a"}


def test_missing_equal_labels_match_each_other_as_empty() -> None:
    alerts = [alert("dev", "DeviceDown"), alert("if1", "InterfaceDown"),
              alert("if2", "InterfaceDown", target="sw1")]  # fmt: skip
    assert inhibited_by(alerts, [DEVICE_DOWN]) == {"if1": "dev"}


def test_first_rule_that_hides_an_alert_is_reported_and_sources_are_chosen_stably() -> None:
    alerts = [
        alert("zz", "DeviceDown", target="sw1", host="web1"),
        alert("aa", "DeviceDown", target="sw1", host="web1"),
        alert("hd", "HostDown", host="web1"),
        alert("if1", "InterfaceDown", target="sw1", host="web1"),
    ]
    assert inhibited_by(alerts, [DEVICE_DOWN, HOST_DOWN])["if1"] == "aa"
    assert inhibited_by(alerts, [HOST_DOWN, DEVICE_DOWN])["if1"] == "hd"
    assert inhibited_by(list(reversed(alerts)), [DEVICE_DOWN])["if1"] == "aa"


def test_inhibit_rules_need_matchers_on_both_sides() -> None:
    with pytest.raises(ValueError, match="target_matchers"):
        InhibitRuleConfig.model_validate({"source_matchers": ["a=b"], "target_matchers": []})


@given(st.lists(st.tuples(st.sampled_from(["DeviceDown", "InterfaceDown"]),
                          st.sampled_from(["sw1", "sw2", ""]),
                          st.sampled_from(list(AlertState))), max_size=12))  # fmt: skip
def test_every_inhibition_has_a_firing_matching_source(
    rows: list[tuple[str, str, AlertState]],
) -> None:
    alerts = [alert(f"a{i}", name, state, target=t) for i, (name, t, state) in enumerate(rows)]
    by_fp = {a.fingerprint: a for a in alerts}
    found = inhibited_by(alerts, [DEVICE_DOWN])
    for target, source in found.items():
        assert target != source
        assert by_fp[source].state is AlertState.FIRING and by_fp[source].rule == "DeviceDown"
        assert by_fp[target].label("target") == by_fp[source].label("target")
    down = {s.label("target") for s in alerts
            if s.rule == "DeviceDown" and s.state is AlertState.FIRING}  # fmt: skip
    hidden = {a.fingerprint for a in alerts
              if a.rule == "InterfaceDown" and a.label("target") in down}  # fmt: skip
    assert set(found) == hidden
