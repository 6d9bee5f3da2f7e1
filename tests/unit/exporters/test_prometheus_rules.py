"""Rule export: PromQL text, durations, templates, and what is skipped or noted."""

from __future__ import annotations

from typing import Any

import pytest

from agent.config import RuleConfig
from agent.expr import parse
from exporters.prometheus_rules import RuleNote, duration, export_rules, template, translate


def rule(**fields: Any) -> RuleConfig:
    return RuleConfig.model_validate({"name": "r", "expr": "x", "warning": 1, **fields})


@pytest.mark.parametrize(
    ("ours", "promql"),
    [
        ("avg(x[5m])", "avg_over_time(x[5m])"),
        ("last(x[90s])", "last_over_time(x[1m30s])"),
        ('absent(up{job="db"}[2m])', 'absent_over_time(up{job="db"}[2m])'),
        ("predict_linear(x[1h], 4h)", "predict_linear(x[1h], 14400)"),
        ("time_to_threshold(x[1h], 0)",
         "((0 - predict_linear(x[1h], 0)) / (deriv(x[1h]) != 0) >= 0)"),
        ("a / b", "(a / (b != 0))"),
        ("a / 2", "(a / 2)"),
        ("sum without (fstype) (x)", "sum without (fstype) (x)"),
        ("max by (device) (rate(x[5m]))", "max by (device) (rate(x[5m]))"),
        ("a - on(host) b", "(a - on(host) b)"),
        ("a unless ignoring(job) b", "(a unless ignoring(job) b)"),
        ("-x * -2", "(-(x) * (-2))"),
        ('x{p="a\\\\b \\"q\\""}', 'x{p="a\\\\b \\"q\\""}'),
    ],
)  # fmt: skip
def test_translation(ours: str, promql: str) -> None:
    assert translate(parse(ours))[0] == promql


def test_each_level_is_one_alerting_rule_with_severity_for_and_keep_firing_for() -> None:
    export = export_rules([rule(expr="free", op="<", warning=10, critical=5, **{"for": "5m"},
                                clear_for="90s", labels={"team": "db"})], interval=15)  # fmt: skip
    group = export.file["groups"][0]
    assert (group["name"], group["interval"]) == ("opswatch", "15s")
    assert group["rules"] == [
        {"alert": "r", "expr": "free < 10", "for": "5m", "keep_firing_for": "1m30s",
         "labels": {"team": "db", "severity": "warning"}},
        {"alert": "r", "expr": "free < 5", "for": "5m", "keep_firing_for": "1m30s",
         "labels": {"team": "db", "severity": "critical"}},
    ]  # fmt: skip


def test_differences_are_noted_and_impossible_rules_skipped() -> None:
    export = export_rules([
        rule(name="hyst", expr="rate(x[5m])", clear=0.5),
        rule(name="zero", expr="x / (2 - 2)"),
        rule(name="look", expr='x{a=~"(?!tmp).*"}'),
        rule(name="fine", expr="x"),
    ])  # fmt: skip
    assert [r["alert"] for r in export.file["groups"][0]["rules"]] == ["hyst", "fine"]
    assert export.skipped == [
        RuleNote("zero", "divides by a constant zero"),
        RuleNote("look", "regular expression '(?!tmp).*' uses syntax RE2 does not have"),
    ]
    texts = [n.text for n in export.notes if n.rule == "hyst"]
    assert any("extrapolates" in t for t in texts) and any("clear 0.5" in t for t in texts)
    assert not [n for n in export.notes if n.rule == "fine"]


def test_templates_become_go_actions_and_everything_else_stays_literal() -> None:
    assert template("{host} at {value} (limit {threshold})", 0.5) == (
        "{{ $labels.host }} at {{ $value }} (limit 0.5)"
    )
    assert template("{{host}} {{ 7*7 }}", 1) == '{{ "{{" }}host}} {{ "{{" }} 7*7 }}'
    assert template("{host.__class__} {0}", 1) == "{host.__class__} {0}"


def test_durations() -> None:
    assert [duration(s) for s in (0, 0.5, 15, 150, 3600, 86400 * 8)] == [
        "0s", "500ms", "15s", "2m30s", "1h", "1w1d",
    ]  # fmt: skip
