"""Vectors held as aligned columns inside the evaluator keep the dict semantics, order included.

The order of a vector's elements decides which series speaks for an alert when rule labels make
two series one alert, so every operator must yield its elements in the order the dict-based
evaluator did: the left side's order, then (for `or`) the right side's additions. The expected
values below are what that evaluator returned for the same store.
"""

from __future__ import annotations

from agent.evaluate import Columns, evaluate, evaluate_columns
from agent.expr import parse
from agent.model import Sample, sample
from agent.series import SeriesStore

NOW = 1_700_000_000.0


def store() -> SeriesStore:
    samples: list[Sample] = []
    for h in range(3):
        for p in range(2):
            labels = {"instance": f"sw{h}", "port": str(p), "team": "ab"[h % 2]}
            samples.append(sample("speed", 0.0 if (h, p) == (2, 1) else 1000.0, NOW, **labels))
    s = SeriesStore(retention=3600)
    s.add(samples)
    return s


def elements(expr: str) -> list[tuple[str, float]]:
    """`instance/port` (or the labels left) of each element, in order, with its value."""
    out = evaluate(parse(expr), store(), NOW)
    return [
        ("/".join(v for _, v in labels if v not in "ab"), value) for labels, value in out.items()
    ]


def test_or_keeps_the_left_order_then_adds_the_right() -> None:
    assert [e for e, _ in elements('speed{team="b"} or speed')] == [
        "sw1/0", "sw1/1", "sw0/0", "sw0/1", "sw2/0", "sw2/1",
    ]  # fmt: skip


def test_set_operators_on_signatures_keep_their_own_labels() -> None:
    assert [e for e, _ in elements('speed and on(port) speed{team="b"}')] == [
        "sw0/0", "sw0/1", "sw1/0", "sw1/1", "sw2/0", "sw2/1",
    ]  # fmt: skip
    assert elements('speed unless on(instance) speed{team="a"}') == [
        ("sw1/0", 1000.0), ("sw1/1", 1000.0),
    ]  # fmt: skip


def test_a_signature_seen_twice_matches_nothing() -> None:
    assert elements("speed + ignoring(port) speed") == []


def test_matching_then_division_by_zero_drops_the_pair() -> None:
    assert elements('speed{port="0"} / ignoring(port) speed{port="1"}') == [
        ("sw0", 1.0), ("sw1", 1.0),
    ]  # fmt: skip


def test_unaligned_sides_pair_by_label_in_left_order() -> None:
    assert elements('speed * speed{team="b"}') == [("sw1/0", 1e6), ("sw1/1", 1e6)]
    assert elements('speed{instance="sw2"} - speed') == [("sw2/0", 0.0), ("sw2/1", 0.0)]


def test_scalar_division_drops_zero_denominators_only() -> None:
    assert [e for e, _ in elements("0 / speed")] == ["sw0/0", "sw0/1", "sw1/0", "sw1/1", "sw2/0"]
    assert elements("speed / 0") == []


def test_comparisons_filter_in_order() -> None:
    assert [e for e, _ in elements("speed == 0")] == ["sw2/1"]
    assert [e for e, _ in elements("500 < speed")] == [
        "sw0/0", "sw0/1", "sw1/0", "sw1/1", "sw2/0",
    ]  # fmt: skip


def test_scalar_operations_share_their_operand_keys() -> None:
    columns = evaluate_columns(parse("speed * 8 / 2"), store(), NOW)
    assert isinstance(columns, Columns)
    assert len(columns) == 6 and len(set(columns.keys)) == 6
    assert columns.as_dict() == evaluate(parse("speed * 8 / 2"), store(), NOW)
    assert Columns.of(columns.as_dict()).keys == columns.keys


def test_matching_sides_with_the_same_labels_cut_once_and_keep_ambiguity_rules() -> None:
    assert elements("speed / on(instance, port) speed") == [
        ("sw0/0", 1.0), ("sw0/1", 1.0), ("sw1/0", 1.0), ("sw1/1", 1.0), ("sw2/0", 1.0),
    ]  # fmt: skip
    assert elements("speed + on(instance) speed") == []  # two ports a signature: ambiguous
    # team a's two switches make its signatures ambiguous; team b's one switch matches
    assert elements("speed > on(team, port) (speed - 1)") == [("0", 1000.0), ("1", 1000.0)]
    assert elements('speed{team="b"} > ignoring(team) (speed{team="b"} - 1)') == [
        ("sw1/0", 1000.0), ("sw1/1", 1000.0),
    ]  # fmt: skip
