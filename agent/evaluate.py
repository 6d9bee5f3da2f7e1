"""Evaluation of a parsed indicator expression against series windows at one instant.

Pure: the result depends only on (expression, series, now). Values are instant vectors
(`dict[Labels, float]` to callers, `Columns` inside: series labels never carry the metric name,
so a vector's label sets are unique) or plain floats for scalars. Nothing raises at evaluation
time: an element with no defined value (division by zero, too few points for `rate`) is left out
of the result.

This module walks the tree and reads series windows (selectors, window functions, line fits);
`agent.vector` combines the values it computes (aggregation, arithmetic, matching).
"""

from __future__ import annotations

import itertools
import operator
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence

from agent.expr_ast import (
    PREDICTIONS,
    Aggregation,
    Binary,
    Call,
    Expr,
    Number,
    RangeSelector,
    Selector,
    Unary,
    children,
)
from agent.model import Labels
from agent.series import Series, SeriesView
from agent.vector import (
    Columns,
    Fit,
    SharedResults,
    Value,
    Vector,
    Xs,
    aggregate,
    as_vector,
    binary,
    line_of,
    linear_fit,
    same_numbers,
    time_axis,
    time_to,
)

__all__ = [  # with what agent.vector keeps for this module: callers import them from here
    "SERIES_FUNCTIONS",
    "STALENESS",
    "VALUE_FUNCTIONS",
    "Columns",
    "Fit",
    "SeriesFn",
    "SharedResults",
    "Value",
    "Vector",
    "evaluate",
    "evaluate_columns",
    "first_prediction",
    "linear_fit",
    "window_fits",
]

STALENESS = 300.0
"""A bare selector ignores series whose latest point is older than this (Prometheus' 5 min)."""


def evaluate(
    node: Expr, view: SeriesView, now: float, shared: SharedResults | None = None
) -> Vector:
    """Evaluate `node` at `now`; a scalar result becomes a single element with no labels.

    With `shared` (made for this `view` and `now`), sub-expressions another call already
    evaluated are not evaluated again, and the vector returned may be one the next call returns
    too: treat it as read-only.
    """
    return evaluate_columns(node, view, now, shared).as_dict()


def evaluate_columns(
    node: Expr, view: SeriesView, now: float, shared: SharedResults | None = None
) -> Columns:
    """`evaluate` without building the dict: for callers that only walk the elements."""
    if shared is not None and (shared.view is not view or shared.now != now):
        raise ValueError("shared results belong to another series view or instant")
    return as_vector(_eval(node, view, now, shared))


def _eval(node: Expr, view: SeriesView, now: float, shared: SharedResults | None) -> Value:
    if isinstance(node, Number):
        return node.value
    if shared is None:
        return _compute(node, view, now, None)
    hit = shared.results.get(node)
    if hit is not None and (hit[0] is node or same_numbers(hit[0], node)):
        return hit[1]
    value = _compute(node, view, now, shared)
    if hit is None:
        shared.results[node] = (node, value)
    return value


def _compute(node: Expr, view: SeriesView, now: float, shared: SharedResults | None) -> Value:
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Selector):
        return _instant(view.select(node.name, node.matchers), now)
    if isinstance(node, Call):
        return _call(node, view, now, shared)
    if isinstance(node, Aggregation):
        return aggregate(node, as_vector(_eval(node.expr, view, now, shared)))
    if isinstance(node, Unary):
        return binary("*", -1.0, _eval(node.expr, view, now, shared), None)
    if isinstance(node, Binary):
        lhs, rhs = _eval(node.lhs, view, now, shared), _eval(node.rhs, view, now, shared)
        return binary(node.op, lhs, rhs, node.matching)
    raise TypeError(f"a {type(node).__name__} cannot be evaluated on its own")  # parse() forbids


def _instant(selected: Iterable[Series], now: float) -> Columns:
    keys: list[Labels] = []
    values: list[float] = []
    oldest = now - STALENESS
    for series in selected:
        ts = series.timestamps
        if ts and ts[-1] <= now:  # the usual case: the newest point is the one, no bisect
            if ts[-1] > oldest:
                keys.append(series.labels)
                values.append(series.values[-1])
            continue
        hi = bisect_right(ts, now)
        if hi and ts[hi - 1] > oldest:
            keys.append(series.labels)
            values.append(series.values[hi - 1])
    return Columns(keys, values)


# ---------------------------------------------------------------------------------------------
# Window functions: one series' points in the window -> a value, or None when undefined


def _resets(vs: Sequence[float], lo: int, hi: int) -> float:
    """What counter resets in vs[lo:hi] hide: the sum of the values just before each drop."""
    # A drop means the counter restarted from zero: that step's increase is the new value,
    # not new - old, so add back each pre-reset value. map/compress keep the loop in C.
    w = vs[lo:hi]
    return sum(itertools.compress(w, map(operator.gt, w, itertools.islice(w, 1, None))))


def _increase(
    series: Series, lo: int, hi: int, now: float, params: tuple[float, ...]
) -> float | None:
    vs = series.values
    if hi - lo < 2:
        return None
    increase = vs[hi - 1] - vs[lo]
    if series.last_drop > series.timestamps[lo]:  # skip the scan when no value fell in the window
        increase += _resets(vs, lo, hi)
    return increase


def _rate(series: Series, lo: int, hi: int, now: float, params: tuple[float, ...]) -> float | None:
    increase = _increase(series, lo, hi, now, params)
    span = series.timestamps[hi - 1] - series.timestamps[lo]
    return increase / span if increase is not None and span > 0 else None


def _window_fit(series: Series, lo: int, hi: int, now: float) -> Fit | None:
    return linear_fit(series.timestamps[lo:hi], series.values[lo:hi], now)


def _predict_linear(
    series: Series, lo: int, hi: int, now: float, params: tuple[float, ...]
) -> float | None:
    """Least-squares line through the window, read `params[0]` seconds after `now`."""
    line = line_of(series.timestamps[lo:hi], series.values[lo:hi], now)
    return None if line is None else line[1] + line[0] * params[0]


def _time_to_threshold(
    series: Series, lo: int, hi: int, now: float, params: tuple[float, ...]
) -> float | None:
    """Seconds until the least-squares line reaches `params[0]`; left out if it never will."""
    line = line_of(series.timestamps[lo:hi], series.values[lo:hi], now)
    return None if line is None else time_to(line[0], line[1], params[0])


VALUE_FUNCTIONS: dict[str, Callable[[Sequence[float]], float | None]] = {
    "last": lambda vs: vs[-1],
    "avg": lambda vs: sum(vs) / len(vs),
    "min": min,
    "max": max,
    "sum": sum,
    "count": lambda vs: float(len(vs)),
    "delta": lambda vs: vs[-1] - vs[0] if len(vs) >= 2 else None,  # gauges: no resets
    "changes": lambda vs: float(sum(map(operator.ne, vs, itertools.islice(vs, 1, None)))),
}
"""Window functions of the values alone (the common, cheaper case)."""
SeriesFn = Callable[[Series, int, int, float, tuple[float, ...]], float | None]
SERIES_FUNCTIONS: dict[str, SeriesFn] = {
    "increase": _increase,
    "rate": _rate,
    "predict_linear": _predict_linear,
    "time_to_threshold": _time_to_threshold,
}
"""Window functions that need timestamps or the series: (series, lo, hi, now, params)."""

# Each loop below runs once per selected series per rule per cycle, the engine's hottest path,
# so each computes the window [lo, hi) inline (as `Series.span` does) instead of calling it,
# and skips the bisects when the window holds the whole series (retention = longest window).


def _call(node: Call, view: SeriesView, now: float, shared: SharedResults | None) -> Columns:
    selector = node.arg.selector
    selected = view.select(selector.name, selector.matchers)
    if node.func == "absent":
        return _absent(node.arg, selected, now)
    start = now - node.arg.range
    values_only = VALUE_FUNCTIONS.get(node.func)
    if values_only is not None:
        return _of_values(values_only, selected, start, now)
    of_series = SERIES_FUNCTIONS.get(node.func, _undefined)
    if of_series is _rate or of_series is _increase:
        return _increases(selected, start, now, per_second=of_series is _rate)
    if of_series is _predict_linear or of_series is _time_to_threshold:
        lines = {} if shared is None else shared.lines
        predict = of_series is _predict_linear
        return _predictions(predict, selected, start, now, node.params[0], lines)
    return _of_series(of_series, selected, start, now, node.params)


def _of_values(
    fn: Callable[[Sequence[float]], float | None],
    selected: Iterable[Series],
    start: float,
    now: float,
) -> Columns:
    keys: list[Labels] = []
    values: list[float] = []
    for series in selected:
        ts = series.timestamps
        if not ts:
            continue
        lo = 0 if ts[0] > start else bisect_right(ts, start)
        hi = len(ts) if ts[-1] <= now else bisect_right(ts, now, lo)
        if hi > lo:
            # the whole array when the window holds every point (the usual case): no copy
            value = fn(series.values if hi - lo == len(ts) else series.values[lo:hi])
            if value is not None:
                keys.append(series.labels)
                values.append(value)
    return Columns(keys, values)


def _increases(selected: Iterable[Series], start: float, now: float, per_second: bool) -> Columns:
    """`rate` (per_second) or `increase`: `_rate`'s arithmetic without two calls a series."""
    keys: list[Labels] = []
    values: list[float] = []
    add_key, add_value = keys.append, values.append  # bound once: two calls a series
    for series in selected:
        ts = series.timestamps
        if not ts:
            continue
        first, last = ts[0], ts[-1]  # the window's ends when it holds the whole series
        if first > start and last <= now:
            lo, hi = 0, len(ts)
        else:
            lo = 0 if first > start else bisect_right(ts, start)
            hi = len(ts) if last <= now else bisect_right(ts, now, lo)
            if hi - lo >= 2:
                first, last = ts[lo], ts[hi - 1]
        if hi - lo < 2:
            continue
        vs = series.values
        increase = vs[hi - 1] - vs[lo]
        if series.last_drop > first:
            increase += _resets(vs, lo, hi)
        if not per_second:
            add_key(series.labels)
            add_value(increase)
        elif (span := last - first) > 0:
            add_key(series.labels)
            add_value(increase / span)
    return Columns(keys, values)


def _predictions(
    predict: bool,
    selected: Iterable[Series],
    start: float,
    now: float,
    param: float,
    lines: dict[tuple[Series, float], tuple[float, float] | None],
) -> Columns:
    """`predict_linear` (predict) or `time_to_threshold`, as `_predict_linear` and
    `_time_to_threshold` compute them, with the time axis' sums computed once per distinct
    window of timestamps (series polled together share them) and each series' line once per
    window start in `lines` (see `SharedResults.lines`)."""
    keys: list[Labels] = []
    values: list[float] = []
    x_parts: dict[bytes, Xs] = {}
    for series in selected:
        ts = series.timestamps
        if not ts:
            continue
        lo = 0 if ts[0] > start else bisect_right(ts, start)
        hi = len(ts) if ts[-1] <= now else bisect_right(ts, now, lo)
        if hi - lo < 2:
            continue
        if (series, start) in lines:
            line = lines[series, start]
        else:
            window = ts[lo:hi]
            x_part = x_parts.get(key := window.tobytes())
            if x_part is None:
                x_part = x_parts[key] = time_axis(window, now)
            fit = line_of(window, series.values[lo:hi], now, x_part)
            line = lines[series, start] = None if fit is None else (fit[0], fit[1])
        if line is None:
            continue
        value = line[1] + line[0] * param if predict else time_to(line[0], line[1], param)
        if value is not None:
            keys.append(series.labels)
            values.append(value)
    return Columns(keys, values)


def _of_series(
    fn: SeriesFn, selected: Iterable[Series], start: float, now: float, params: tuple[float, ...]
) -> Columns:
    keys: list[Labels] = []
    values: list[float] = []
    for series in selected:
        ts = series.timestamps
        if not ts:
            continue
        # The window bounds are inlined here and in _of_values on purpose: this loop runs once
        # per series per rule, and a helper call costs ~10 ms a cycle at 100k series.
        lo = 0 if ts[0] > start else bisect_right(ts, start)
        hi = len(ts) if ts[-1] <= now else bisect_right(ts, now, lo)
        if hi > lo:
            value = fn(series, lo, hi, now, params)
            if value is not None:
                keys.append(series.labels)
                values.append(value)
    return Columns(keys, values)


def _undefined(series: Series, lo: int, hi: int, now: float, params: tuple[float, ...]) -> None:
    return None


def _absent(arg: RangeSelector, selected: Iterable[Series], now: float) -> Columns:
    """1 with the selector's equality labels when no series has a point in the window."""
    for series in selected:
        lo, hi = series.span(now - arg.range, now)
        if hi > lo:
            return Columns([], [])
    labels = {
        m.name: m.value for m in arg.selector.matchers if m.op == "=" and m.name != "__name__"
    }
    return Columns([tuple(sorted(labels.items()))], [1.0])


def window_fits(node: Expr, view: SeriesView, now: float) -> dict[Labels, Fit]:
    """The line behind the first prediction in `node`, per series (to rate its confidence)."""
    call = first_prediction(node)
    if call is None:
        return {}
    out: dict[Labels, Fit] = {}
    for series in view.select(call.arg.selector.name, call.arg.selector.matchers):
        lo, hi = series.span(now - call.arg.range, now)
        fit = _window_fit(series, lo, hi, now)
        if fit is not None:
            out[series.labels] = fit
    return out


def first_prediction(node: Expr) -> Call | None:
    """The first `predict_linear` / `time_to_threshold` call in `node`, depth first."""
    if isinstance(node, Call) and node.func in PREDICTIONS:
        return node
    return next((c for c in map(first_prediction, children(node)) if c is not None), None)
