"""Sub-expressions shared between the rules of one cycle (`SharedResults`) change no answer.

Every expression evaluated with the cycle's shared results must give exactly what it gives
alone (same elements, same values, same sign of zero), whatever other rules ran before it; and
nothing may survive into the next cycle: series added or pruned between cycles are seen.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import RuleConfig
from agent.evaluate import Columns, SharedResults, Vector, evaluate, evaluate_columns
from agent.expr import parse
from agent.model import Alert, Labels, Sample, sample
from agent.rules import compile_rules
from agent.rules import evaluate as evaluate_rules
from agent.series import SeriesStore

NOW = 1_700_000_000.0

EXPRESSIONS = (
    'rate(in_octets{team="a"}[5m]) * 8 / on(instance, port) (speed{team="a"} * 1e6) * 100',
    'rate(in_octets{team="a"}[5m]) * 8 / (speed{team="a"} * 1e6) * 100',
    'rate(in_octets{team="a"}[5m]) * 8',
    "rate(in_octets[5m]) * 8 / ignoring(team) (speed * 1e6)",
    'speed{team="a"} * 1e6',
    "speed * 1e6",
    'max by (instance) (rate(in_octets{team="a"}[5m]))',
    "max by (instance) (rate(in_octets[5m]))",
    "sum without (port) (speed)",
    "speed / speed",
    "speed - speed",
    'speed > 100 and speed{team="a"}',
    'speed or speed{team="b"} * 2',
    'speed unless speed{team="a"}',
    "speed * 0",
    "speed * -0",
    "0 * speed - 0",
    "-0 * speed",
    "predict_linear(in_octets[10m], 0)",
    "predict_linear(in_octets[10m], -0)",
    "time_to_threshold(in_octets[10m], 0)",
    "time_to_threshold(in_octets[10m], -0)",
    "increase(in_octets[5m]) / 0",
    "-speed",
    "absent(nothing[5m])",
    "changes(in_octets[5m])",
    "1 + 2",
)


def fleet(hosts: int = 3, ports: int = 2, steps: int = 12) -> list[Sample]:
    out = []
    for step in range(steps):
        at = NOW - (steps - 1 - step) * 30
        for h in range(hosts):
            for p in range(ports):
                labels = {"instance": f"sw{h}", "port": str(p), "team": "ab"[h % 2]}
                octets = 1e9 + (h + 1) * (p + 1) * 1e6 * step
                if h == 1 and step == 5:
                    octets = 10.0  # a counter reset
                out.append(sample("in_octets", octets, at, **labels))
                out.append(sample("speed", 0.0 if (h, p) == (2, 1) else 1000.0, at, **labels))
    return out


def store_of(samples: list[Sample]) -> SeriesStore:
    store = SeriesStore(retention=3600)
    store.add(samples)
    return store


def exact(vector: Vector) -> dict[Labels, tuple[float, float]]:
    """Each value with its sign, so that 0.0 and -0.0 differ (NaN never occurs here)."""
    return {k: (v, math.copysign(1.0, v)) for k, v in vector.items()}


def test_every_expression_gives_its_own_answer_when_evaluated_after_all_others() -> None:
    store = store_of(fleet())
    alone = {e: exact(evaluate(parse(e), store, NOW)) for e in EXPRESSIONS}
    shared = SharedResults(store, NOW)
    for e in EXPRESSIONS:  # every expression's sub-expressions are now in the shared results
        evaluate(parse(e), store, NOW, shared)
    assert len(shared.results) > 0
    for e in reversed(EXPRESSIONS):  # fresh parse trees: equal, not identical, nodes
        assert exact(evaluate(parse(e), store, NOW, shared)) == alone[e], e


def test_equal_sub_expressions_are_computed_once() -> None:
    store = store_of(fleet())
    shared = SharedResults(store, NOW)
    first = evaluate_columns(parse('rate(in_octets{team="a"}[5m]) * 8'), store, NOW, shared)
    again = evaluate_columns(parse('rate(in_octets{team="a"}[5m])   *   8'), store, NOW, shared)
    assert again is first  # the same object: it was not computed a second time


def test_signed_zero_twins_do_not_share_a_result() -> None:
    store = store_of(fleet())
    shared = SharedResults(store, NOW)
    plus = evaluate(parse("speed * 0"), store, NOW, shared)
    minus = evaluate(parse("speed * -0"), store, NOW, shared)
    assert plus and all(math.copysign(1.0, v) == 1.0 for v in plus.values())
    assert minus and all(math.copysign(1.0, v) == -1.0 for v in minus.values())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(EXPRESSIONS), min_size=1, max_size=12))
def test_any_order_of_rules_gives_each_its_own_answer(order: list[str]) -> None:
    store = store_of(fleet())
    shared = SharedResults(store, NOW)
    for e in order:
        assert exact(evaluate(parse(e), store, NOW, shared)) == exact(
            evaluate(parse(e), store, NOW)
        ), e


def snapshot(value: float | Columns) -> object:
    if isinstance(value, float):
        return (value, math.copysign(1.0, value))
    return (list(value.keys), [(v, math.copysign(1.0, v)) for v in value.values])


def test_a_shared_value_is_never_changed_by_later_rules() -> None:
    store = store_of(fleet())
    shared = SharedResults(store, NOW)
    results = [evaluate_columns(parse(e), store, NOW, shared) for e in EXPRESSIONS]
    before = [snapshot(r) for r in results]
    every = {node: snapshot(value) for node, (_, value) in shared.results.items()}
    for e in EXPRESSIONS:  # again, now reading (and combining) the shared values
        evaluate_columns(parse(e), store, NOW, shared)
        evaluate(parse(e), store, NOW, shared)
    assert [snapshot(r) for r in results] == before
    assert {node: snapshot(value) for node, (_, value) in shared.results.items()} == every


def test_shared_results_refuse_another_instant_or_view() -> None:
    store = store_of(fleet())
    shared = SharedResults(store, NOW)
    with pytest.raises(ValueError, match="another series view or instant"):
        evaluate(parse("speed"), store, NOW + 30, shared)
    with pytest.raises(ValueError, match="another series view or instant"):
        evaluate(parse("speed"), store_of(fleet()), NOW, shared)


def rules(*specs: tuple[str, str, float]) -> list[RuleConfig]:
    return [
        RuleConfig.model_validate(
            {"name": name, "expr": expr, "warning": warning, "annotations": {"s": "{value}"}}
        )
        for name, expr, warning in specs
    ]


def alerts_by_rule(alerts: list[Alert]) -> dict[str, list[tuple[Labels, float, str]]]:
    out: dict[str, list[tuple[Labels, float, str]]] = {}
    for a in alerts:
        out.setdefault(a.rule, []).append((a.labels, a.value, a.level.value))
    return {k: sorted(v) for k, v in out.items()}


def test_two_rules_sharing_a_sub_expression_alert_as_each_does_alone() -> None:
    store = store_of(fleet())
    util = 'rate(in_octets{team="a"}[5m]) * 8 / (speed{team="a"} * 1e6) * 100'
    configs = rules(
        ("util_warn", util, 0.01),
        ("util_high", util, 0.05),  # the same indicator at another threshold
        ("util_on", util.replace("/ (", "/ on(instance, port) ("), 0.01),
        ("speed_up", 'speed{team="a"} * 1e6 > 0', 0.5),
        ("fast", "max by (instance) (rate(in_octets[5m]))", 1e5),
    )
    together = evaluate_rules(compile_rules(configs), store, NOW, {})
    alone: list[Alert] = []
    for config in configs:
        alone += evaluate_rules(compile_rules([config]), store, NOW, {}).alerts
    assert alerts_by_rule(together.alerts) == alerts_by_rule(alone)
    assert set(alerts_by_rule(together.alerts)) == {
        "util_warn",
        "util_high",
        "util_on",
        "speed_up",
        "fast",
    }


def test_nothing_is_carried_into_the_next_cycle() -> None:
    store = store_of(fleet())
    compiled = compile_rules(rules(("fast", "rate(in_octets[5m]) * 8", 1.0)))
    first = evaluate_rules(compiled, store, NOW, {})
    assert len(first.alerts) == 6
    # a new series between cycles, at the same instant and at the next one: both cycles see it
    store.add([sample("in_octets", v, NOW - 60 + 30 * i, instance="sw9", port="0", team="a")
               for i, v in enumerate((0.0, 3e6, 6e6))])  # fmt: skip
    again = evaluate_rules(compiled, store, NOW, first.state)
    assert {a.labels for a in again.alerts} > {a.labels for a in first.alerts}
    assert len(again.alerts) == 7
    later = evaluate_rules(compiled, store, NOW + 30, again.state)
    assert any(dict(a.labels).get("instance") == "sw9" for a in later.alerts)
    # and a series pruned between cycles is gone from the next one
    store.prune(NOW + 3600 - 15)  # keeps each series' last point (rate needs two: all gone)
    assert {
        a.state.value for a in evaluate_rules(compiled, store, NOW + 30, later.state).alerts
    } == {"resolved"}


def test_predictions_sharing_a_line_follow_points_added_between_cycles() -> None:
    store = SeriesStore(retention=3600)
    store.add([sample("avail", 100.0 - i, NOW - 600 + 60 * i, mount="/") for i in range(10)])
    exprs = ("predict_linear(avail[1h], 3600)", "time_to_threshold(avail[1h], 0)")

    def cycle(now: float) -> list[Vector]:
        shared = SharedResults(store, now)
        return [evaluate(parse(e), store, now, shared) for e in exprs]

    first = cycle(NOW)
    assert first == [evaluate(parse(e), store, NOW) for e in exprs]
    assert first[0][(("mount", "/"),)] == pytest.approx(90.0 - 60.0, abs=1e-9)
    store.add([sample("avail", 50.0, NOW + 60, mount="/")])  # it suddenly fell
    second = cycle(NOW + 60)
    assert second == [evaluate(parse(e), store, NOW + 60) for e in exprs]
    assert second[1][(("mount", "/"),)] < first[1][(("mount", "/"),)]
