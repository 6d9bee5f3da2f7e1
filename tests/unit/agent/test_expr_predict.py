"""Predictions (time to threshold, fit quality) and comparison / set operators."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ExpressionError
from agent.evaluate import Fit, evaluate, linear_fit, window_fits
from agent.expr import Binary, Call, Number, Selector, parse
from agent.model import Labels, Sample, make_labels
from agent.series import SeriesStore

NOW = 1_000_000.0


def L(**labels: str) -> Labels:
    return make_labels(labels)


def run(text: str, store: SeriesStore, now: float = NOW) -> dict[Labels, float]:
    return evaluate(parse(text), store, now)


def store_of(*rows: tuple[str, dict[str, str], list[float]], step: float = 60) -> SeriesStore:
    """Each row is one series ending at NOW with a point every `step` seconds."""
    store = SeriesStore(retention=86400)
    for name, labels, values in rows:
        start = NOW - step * (len(values) - 1)
        store.add(
            Sample(name, make_labels(labels), float(v), start + i * step)
            for i, v in enumerate(values)
        )
    return store


# ---------------------------------------------------------------------------------------------
# time_to_threshold


def test_time_to_threshold_parses_with_one_parameter() -> None:
    tree = parse('time_to_threshold(avail{mountpoint="/"}[6h], 0)')
    assert isinstance(tree, Call)
    assert (tree.func, tree.arg.range, tree.params) == ("time_to_threshold", 21600.0, (0.0,))
    with pytest.raises(ExpressionError, match="takes 2 argument"):
        parse("time_to_threshold(avail[6h])")


def test_falling_free_space_reaches_zero_when_the_line_says() -> None:
    # 1000 bytes free, falling 10 a minute: the fitted value now is 900, zero in 90 minutes
    store = store_of(("avail", {"mountpoint": "/"}, [1000 - 10 * i for i in range(11)]))
    result = run("time_to_threshold(avail[10m30s], 0)", store)
    assert result == {L(mountpoint="/"): pytest.approx(90 * 60)}


def test_rising_usage_reaches_an_upper_threshold() -> None:
    store = store_of(("used_percent", {}, [50, 52, 54, 56, 58, 60]))  # +2 a minute
    assert run("time_to_threshold(used_percent[10m], 90)", store) == {(): pytest.approx(900)}


def test_elements_heading_away_or_flat_are_left_out() -> None:
    store = store_of(
        ("avail", {"fs": "growing"}, [100, 110, 120, 130]),
        ("avail", {"fs": "flat"}, [100, 100, 100, 100]),
        ("avail", {"fs": "shrinking"}, [100, 90, 80, 70]),
        ("avail", {"fs": "single"}, [5]),
    )
    result = run("time_to_threshold(avail[10m], 0)", store)
    assert result == {L(fs="shrinking"): pytest.approx(7 * 60)}


def test_a_line_already_past_the_threshold_is_left_out() -> None:
    # the crossing lies in the past: the plain threshold rule speaks now, not the prediction
    store = store_of(("used", {}, [80, 85, 90, 95, 100]))
    assert run("time_to_threshold(used[10m], 90)", store) == {}
    assert run("time_to_threshold(used[10m], 100)", store) == {(): pytest.approx(0.0)}


def test_time_to_threshold_agrees_with_predict_linear() -> None:
    store = store_of(("x", {}, [3.0, 7.5, 8.0, 12.5, 15.0, 19.5, 22.0]))
    seconds = run("time_to_threshold(x[10m], 100)", store)[()]
    assert run(f"predict_linear(x[10m], {seconds:.6f})", store)[()] == pytest.approx(100)


def test_threshold_can_be_negative_or_a_duration() -> None:
    store = store_of(("x", {}, [10, 5, 0, -5]))  # -5 a minute, fitted -5 now
    assert run("time_to_threshold(x[10m], -20)", store) == {(): pytest.approx(180)}
    rising = store_of(("age", {}, [0, 60, 120]))  # one second per second
    assert run("time_to_threshold(age[10m], 1h)", rising) == {(): pytest.approx(3600 - 120)}


# ---------------------------------------------------------------------------------------------
# Fit quality


def test_linear_fit_of_points_on_a_line_is_perfect() -> None:
    fit = linear_fit([NOW - 120, NOW - 60, NOW], [1.0, 3.0, 5.0], NOW)
    assert isinstance(fit, Fit)
    assert (fit.slope, fit.intercept, fit.r2, fit.points) == pytest.approx((2 / 60, 5, 1, 3))


def test_noise_lowers_r2_and_constant_values_fit_perfectly() -> None:
    times = [NOW - 60 * i for i in range(8, -1, -1)]
    noisy = linear_fit(times, [0, 9, 1, 8, 2, 7, 3, 6, 4], NOW)
    assert noisy is not None and noisy.r2 < 0.2
    flat = linear_fit(times, [5.0] * 9, NOW)
    assert flat is not None and (flat.slope, flat.r2) == (0.0, 1.0)
    assert flat.time_to(10) is None


def test_linear_fit_needs_two_distinct_times() -> None:
    assert linear_fit([NOW], [1.0], NOW) is None
    assert linear_fit([NOW, NOW], [1.0, 2.0], NOW) is None


@settings(max_examples=200, deadline=None)
@given(
    slope=st.floats(-1e3, 1e3).filter(lambda s: abs(s) > 1e-3),
    intercept=st.floats(-1e6, 1e6),
    points=st.integers(2, 40),
)
def test_fit_recovers_any_exact_line(slope: float, intercept: float, points: int) -> None:
    times = [NOW - 15.0 * i for i in range(points)]
    fit = linear_fit(times, [intercept + slope * (t - NOW) for t in times], NOW)
    assert fit is not None
    assert fit.slope == pytest.approx(slope, rel=1e-6)
    assert fit.intercept == pytest.approx(intercept, rel=1e-6, abs=1e-3)
    assert fit.r2 == pytest.approx(1.0, abs=1e-6)
    assert fit.points == points


def test_window_fits_reports_the_line_behind_a_prediction_per_series() -> None:
    store = store_of(
        ("avail", {"fs": "a"}, [100, 90, 80, 70]),
        ("avail", {"fs": "b"}, [100, 95, 99, 90]),
    )
    fits = window_fits(parse("3600 - time_to_threshold(avail[10m], 0)"), store, NOW)
    assert set(fits) == {L(fs="a"), L(fs="b")}
    assert fits[L(fs="a")].r2 == pytest.approx(1.0)
    assert fits[L(fs="a")].points == 4
    assert 0 < fits[L(fs="b")].r2 < 1
    assert window_fits(parse("avg(avail[10m])"), store, NOW) == {}


# ---------------------------------------------------------------------------------------------
# Comparisons and set operators


def test_comparisons_parse_with_promql_precedence() -> None:
    tree = parse("a + 1 > b * 2")
    assert isinstance(tree, Binary) and tree.op == ">"
    assert isinstance(tree.lhs, Binary) and tree.lhs.op == "+"
    tree = parse("a > 1 and b or c unless d")
    assert isinstance(tree, Binary) and tree.op == "or"
    assert isinstance(tree.lhs, Binary) and tree.lhs.op == "and"
    assert tree.rhs == Binary("unless", Selector("c"), Selector("d"))
    assert parse("1 < x") == Binary("<", Number(1.0), Selector("x"))


def test_comparison_with_a_number_filters_and_keeps_the_vector_values() -> None:
    store = store_of(("x", {"k": "a"}, [1]), ("x", {"k": "b"}, [5]), ("x", {"k": "c"}, [9]))
    assert run("x > 4", store) == {L(k="b"): 5.0, L(k="c"): 9.0}
    assert run("4 < x", store) == {L(k="b"): 5.0, L(k="c"): 9.0}
    assert run("x == 5", store) == {L(k="b"): 5.0}
    assert run("x != 5", store) == {L(k="a"): 1.0, L(k="c"): 9.0}
    assert run("x <= 5", store) == {L(k="a"): 1.0, L(k="b"): 5.0}
    assert run("x >= 9", store) == {L(k="c"): 9.0}
    assert run("(x > 1) * 10", store) == {L(k="b"): 50.0, L(k="c"): 90.0}


def test_comparison_between_vectors_keeps_the_left_value_where_it_holds() -> None:
    store = store_of(
        ("used", {"d": "a"}, [5]), ("used", {"d": "b"}, [9]),
        ("size", {"d": "a"}, [10]), ("size", {"d": "b"}, [0]),
    )  # fmt: skip
    assert run("used < size", store) == {L(d="a"): 5.0}
    assert run("used / (size != 0)", store) == {L(d="a"): 0.5}


def test_set_operators_choose_by_labels_and_keep_their_own() -> None:
    store = store_of(
        ("down", {"host": "a", "job": "x"}, [1]), ("down", {"host": "b", "job": "x"}, [1]),
        ("maint", {"host": "b"}, [1]), ("up", {"host": "c", "job": "x"}, [0]),
    )  # fmt: skip
    assert run("down unless on(host) maint", store) == {L(host="a", job="x"): 1.0}
    assert run("down and on(host) maint", store) == {L(host="b", job="x"): 1.0}
    assert run("down and maint", store) == {}
    assert run("down or up", store) == {
        L(host="a", job="x"): 1.0, L(host="b", job="x"): 1.0, L(host="c", job="x"): 0.0,
    }  # fmt: skip
    assert run("up or ignoring(job) down", store) == {
        L(host="c", job="x"): 0.0, L(host="a", job="x"): 1.0, L(host="b", job="x"): 1.0,
    }  # fmt: skip


def test_nan_behaves_as_in_promql() -> None:
    store = store_of(("x", {}, [math.nan]))
    assert run("x > 0", store) == {}
    assert run("x == x", store) == {}
    assert math.isnan(run("x != 0", store)[()])  # as in Go: NaN differs from everything
