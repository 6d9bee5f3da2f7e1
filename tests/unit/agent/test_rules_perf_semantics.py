"""The evaluator's caches and fast paths give the values the plain definitions give.

Guards what bench/rules_eval.py made faster: the store's label index and shared label tuples,
the evaluator's memoised `on`/`by` label cuts, position-paired vectors, the shared time axis of
predictions, and the rule engine's per-rule identities and bad-elements-only path.
"""

from __future__ import annotations

import math

import pytest

from agent.config import RuleConfig
from agent.evaluate import evaluate, linear_fit
from agent.expr import parse
from agent.model import AlertState, Sample, fingerprint, make_labels, sample
from agent.rules import compile_rules
from agent.rules import evaluate as evaluate_rules
from agent.series import Matcher, SeriesStore

NOW = 1_700_000_000.0


def store_of(*samples: Sample) -> SeriesStore:
    store = SeriesStore(retention=3600)
    store.add(samples)
    return store


def value_of(expr: str, store: SeriesStore, now: float = NOW) -> dict[str, float]:
    """Each element as `k=v,...` -> value, for readable assertions."""
    out = evaluate(parse(expr), store, now)
    return {",".join(f"{k}={v}" for k, v in labels): value for labels, value in out.items()}


def test_equality_selection_follows_series_added_and_pruned() -> None:
    store = store_of(sample("up", 1, NOW - 100, job="node", host="a"))
    node = [Matcher.make("job", "=", "node")]
    assert [s.label_map["host"] for s in store.select("up", node)] == ["a"]
    store.add([sample("up", 1, NOW, job="node", host="b"), sample("up", 1, NOW, job="snmp")])
    assert [s.label_map["host"] for s in store.select("up", node)] == ["a", "b"]
    store.prune(now=NOW + 3600 - 50)  # a's only point is now too old
    assert [s.label_map["host"] for s in store.select("up", node)] == ["b"]


def test_equality_to_empty_matches_series_without_the_label_in_family_order() -> None:
    store = store_of(
        sample("fs", 1, NOW, mountpoint="/", fstype="ext4"),
        sample("fs", 2, NOW, mountpoint="/run"),
        sample("fs", 3, NOW, mountpoint="/tmp", fstype=""),
        sample("fs", 4, NOW, mountpoint="/home", fstype="xfs"),
    )
    assert value_of('fs{fstype=""}', store) == {"mountpoint=/run": 2.0, "mountpoint=/tmp": 3.0}
    both = 'fs{fstype="ext4", mountpoint=~"/.*"}'
    assert value_of(both, store) == {"fstype=ext4,mountpoint=/": 1.0}
    assert value_of('fs{fstype="btrfs"}', store) == {}
    assert value_of('missing{fstype="ext4"}', store) == {}


def test_vector_arithmetic_pairs_by_labels_whatever_the_order() -> None:
    store = SeriesStore(retention=3600)
    store.add(sample("used", v, NOW, dev=d) for d, v in (("a", 1), ("b", 2), ("c", 3)))
    store.add(sample("size", v, NOW, dev=d) for d, v in (("c", 30), ("a", 10), ("d", 40)))
    assert value_of("used / size", store) == {"dev=a": 0.1, "dev=c": 0.1}
    assert value_of("size > used", store) == {"dev=c": 30.0, "dev=a": 10.0}
    store.add([sample("used", 4, NOW, dev="d")])
    assert value_of("used * size", store) == {"dev=a": 10.0, "dev=c": 90.0, "dev=d": 160.0}


def test_division_drops_zero_divisors_but_they_still_make_a_match_ambiguous() -> None:
    store = store_of(
        sample("a", 6, NOW, x="1"), sample("a", 8, NOW, x="2"),
        sample("b", 2, NOW, x="1", y="p"), sample("b", 0, NOW, x="1", y="q"),
        sample("b", 0, NOW, x="2", y="p"),
    )  # fmt: skip
    assert value_of("a / on(x) b", store) == {}  # x=1 has two partners, x=2 divides by zero
    assert value_of("a / ignoring(y) b", store) == {}
    assert value_of("12 / b", store) == {"x=1,y=p": 6.0}
    assert value_of("a / 0", store) == {}


def test_on_and_by_results_change_when_series_come_and_go() -> None:
    store = store_of(sample("a", 1, NOW, x="1", y="p"), sample("b", 4, NOW, x="1", y="z"))
    assert value_of("a + on(x) b", store) == {"x=1": 5.0}
    assert value_of("sum by (x) (a)", store) == {"x=1": 1.0}
    store.add([sample("a", 2, NOW, x="1", y="q")])
    assert value_of("a + on(x) b", store) == {}  # a is now many-to-one on x
    assert value_of("sum by (x) (a)", store) == {"x=1": 3.0}
    assert value_of("max without (y) (a)", store) == {"x=1": 2.0}


def test_predictions_fit_each_series_on_its_own_timestamps() -> None:
    store = SeriesStore(retention=3600)
    store.add(sample("v", 100 - t / 60, NOW - 600 + t, s="even") for t in (0, 60, 120, 180))
    store.add(sample("v", 50 - t / 30, NOW - 600 + t, s="odd") for t in (0, 30, 300))
    out = evaluate(parse("predict_linear(v[1h], 600)"), store, NOW)
    for labels, value in out.items():
        series = next(iter(store.select("v", [Matcher.make("s", "=", labels[0][1])])))
        fit = linear_fit(series.timestamps, series.values, NOW)
        assert fit is not None and value == pytest.approx(fit.intercept + fit.slope * 600)
    assert out[(("s", "even"),)] == pytest.approx(100 - 1200 / 60)
    assert out[(("s", "odd"),)] == pytest.approx(50 - 1200 / 30)
    ttt = value_of("time_to_threshold(v[1h], 0)", store)
    assert ttt == {"s=even": pytest.approx((100 - 600 / 60) * 60), "s=odd": pytest.approx(900)}


def test_only_bad_elements_alert_and_nan_never_does() -> None:
    store = SeriesStore(retention=3600)
    store.add(sample("load", v, NOW, cpu=c) for c, v in (("0", 1), ("1", 9), ("2", math.nan)))
    config = RuleConfig.model_validate({"name": "hot", "expr": "load", "warning": 5})
    compiled = compile_rules([config], {"host": "h"})
    result = evaluate_rules(compiled, store, NOW, {})
    assert [a.label("cpu") for a in result.alerts] == ["1"]
    labels = make_labels({"alertname": "hot", "cpu": "1", "host": "h"})
    assert result.alerts[0].fingerprint == fingerprint("hot", labels)


def test_two_rules_on_the_same_series_keep_their_own_identities() -> None:
    store = store_of(sample("load", 9, NOW, cpu="0"))
    configs = [{"name": n, "expr": "load", "warning": 5, "labels": {"team": n}} for n in "ab"]
    compiled = compile_rules([RuleConfig.model_validate(c) for c in configs], {"host": "h"})
    alerts = evaluate_rules(compiled, store, NOW, {}).alerts
    assert [(a.rule, a.label("team")) for a in alerts] == [("a", "a"), ("b", "b")]
    assert alerts[0].fingerprint != alerts[1].fingerprint


def test_a_firing_rule_still_sees_new_bad_elements_and_clears_good_ones() -> None:
    store = SeriesStore(retention=3600)
    compiled = compile_rules(
        [RuleConfig.model_validate({"name": "hot", "expr": "load", "warning": 5})], {}
    )
    store.add(sample("load", v, NOW, cpu=c) for c, v in (("0", 9), ("1", 1)))
    state = evaluate_rules(compiled, store, NOW, {}).state
    store.add(sample("load", v, NOW + 30, cpu=c) for c, v in (("0", 1), ("1", 9)))
    result = evaluate_rules(compiled, store, NOW + 30, state)
    states = {a.label("cpu"): a.state for a in result.alerts}
    assert states == {"0": AlertState.RESOLVED, "1": AlertState.FIRING}
