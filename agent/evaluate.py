"""Evaluation of a parsed indicator expression against series windows at one instant.

Pure: the result depends only on (expression, series, now). Values are instant vectors
(`dict[Labels, float]`: series labels never carry the metric name, so a vector's label sets are
unique) or plain floats for scalars. Nothing raises at evaluation time: an element with no
defined value (division by zero, too few points for `rate`) is left out of the result.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from agent.expr_ast import (
    PREDICTIONS,
    SET_OPERATORS,
    Aggregation,
    Binary,
    Call,
    Expr,
    Number,
    RangeSelector,
    Selector,
    Unary,
    VectorMatching,
    children,
)
from agent.model import Labels
from agent.series import Series, SeriesView

Vector = dict[Labels, float]
Value = float | Vector

STALENESS = 300.0
"""A bare selector ignores series whose latest point is older than this (Prometheus' 5 min)."""


def evaluate(node: Expr, view: SeriesView, now: float) -> Vector:
    """Evaluate `node` at `now`; a scalar result becomes a single element with no labels."""
    value = _eval(node, view, now)
    return {(): value} if isinstance(value, float) else value


def _eval(node: Expr, view: SeriesView, now: float) -> Value:
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Selector):
        return _instant(view.select(node.name, node.matchers), now)
    if isinstance(node, Call):
        return _call(node, view, now)
    if isinstance(node, Aggregation):
        return _aggregate(node, _vector(_eval(node.expr, view, now)))
    if isinstance(node, Unary):
        return _binary("*", -1.0, _eval(node.expr, view, now), None)
    if isinstance(node, Binary):
        lhs, rhs = _eval(node.lhs, view, now), _eval(node.rhs, view, now)
        return _binary(node.op, lhs, rhs, node.matching)
    raise TypeError(f"a {type(node).__name__} cannot be evaluated on its own")  # parse() forbids


def _vector(value: Value) -> Vector:
    return {(): value} if isinstance(value, float) else value


def _instant(selected: Iterable[Series], now: float) -> Vector:
    out: Vector = {}
    oldest = now - STALENESS
    for series in selected:
        ts = series.timestamps
        hi = len(ts) if ts and ts[-1] <= now else bisect_right(ts, now)
        if hi and ts[hi - 1] > oldest:
            out[series.labels] = series.values[hi - 1]
    return out


# ---------------------------------------------------------------------------------------------
# Window functions: one series' points in the window -> a value, or None when undefined


def _increase(
    series: Series, lo: int, hi: int, now: float, params: tuple[float, ...]
) -> float | None:
    vs = series.values
    if hi - lo < 2:
        return None
    increase = vs[hi - 1] - vs[lo]
    if series.last_drop > series.timestamps[lo]:  # skip the scan when no value fell in the window
        # A drop means the counter restarted from zero: that step's increase is the new value,
        # not new - old, so add back each pre-reset value. map/compress keep the loop in C.
        w = vs[lo:hi]
        increase += sum(itertools.compress(w, map(operator.gt, w, itertools.islice(w, 1, None))))
    return increase


def _rate(series: Series, lo: int, hi: int, now: float, params: tuple[float, ...]) -> float | None:
    increase = _increase(series, lo, hi, now, params)
    span = series.timestamps[hi - 1] - series.timestamps[lo]
    return increase / span if increase is not None and span > 0 else None


@dataclass(frozen=True, slots=True)
class Fit:
    """A least-squares line through one series' window, with how well it fits."""

    slope: float
    """Units per second."""
    intercept: float
    """The line's value at the evaluation time."""
    r2: float
    """Coefficient of determination, 0 (no linear trend) to 1 (points on the line)."""
    points: int

    def time_to(self, threshold: float) -> float | None:
        """Seconds until the line reaches `threshold`; None if flat or heading away from it."""
        if self.slope == 0:
            return None
        seconds = (threshold - self.intercept) / self.slope
        return seconds if seconds >= 0 else None


def linear_fit(timestamps: Sequence[float], values: Sequence[float], now: float) -> Fit | None:
    """Fit a line through the points (x = seconds relative to `now`); None if under 2 times."""
    n = len(values)
    if n < 2:
        return None
    # centred sums: raw sums of squares cancel catastrophically for large values (bytes)
    x_mean = math.fsum(t - now for t in timestamps) / n
    y_mean = math.fsum(values) / n
    dxs = [t - now - x_mean for t in timestamps]
    dys = [y - y_mean for y in values]
    sxx = math.fsum(dx * dx for dx in dxs)
    if sxx <= 0:
        return None
    sxy = math.fsum(dx * dy for dx, dy in zip(dxs, dys, strict=True))
    syy = math.fsum(dy * dy for dy in dys)
    slope = sxy / sxx
    r2 = 1.0 if syy <= 0 else min(1.0, sxy * sxy / (sxx * syy))
    return Fit(slope, y_mean - slope * x_mean, r2, n)


def _window_fit(series: Series, lo: int, hi: int, now: float) -> Fit | None:
    return linear_fit(series.timestamps[lo:hi], series.values[lo:hi], now)


def _predict_linear(
    series: Series, lo: int, hi: int, now: float, params: tuple[float, ...]
) -> float | None:
    """Least-squares line through the window, read `params[0]` seconds after `now`."""
    fit = _window_fit(series, lo, hi, now)
    return None if fit is None else fit.intercept + fit.slope * params[0]


def _time_to_threshold(
    series: Series, lo: int, hi: int, now: float, params: tuple[float, ...]
) -> float | None:
    """Seconds until the least-squares line reaches `params[0]`; left out if it never will."""
    fit = _window_fit(series, lo, hi, now)
    return None if fit is None else fit.time_to(params[0])


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


def _call(node: Call, view: SeriesView, now: float) -> Vector:
    selector = node.arg.selector
    selected = view.select(selector.name, selector.matchers)
    if node.func == "absent":
        return _absent(node.arg, selected, now)
    start, out = now - node.arg.range, {}
    values_only, params = VALUE_FUNCTIONS.get(node.func), node.params
    of_series = SERIES_FUNCTIONS.get(node.func, _undefined)
    for series in selected:
        lo, hi = series.span(start, now)
        if hi <= lo:
            continue
        if values_only is not None:
            value = values_only(series.values[lo:hi])
        else:
            value = of_series(series, lo, hi, now, params)
        if value is not None:
            out[series.labels] = value
    return out


def _undefined(series: Series, lo: int, hi: int, now: float, params: tuple[float, ...]) -> None:
    return None


def _absent(arg: RangeSelector, selected: Iterable[Series], now: float) -> Vector:
    """1 with the selector's equality labels when no series has a point in the window."""
    for series in selected:
        lo, hi = series.span(now - arg.range, now)
        if hi > lo:
            return {}
    labels = {
        m.name: m.value for m in arg.selector.matchers if m.op == "=" and m.name != "__name__"
    }
    return {tuple(sorted(labels.items())): 1.0}


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


# ---------------------------------------------------------------------------------------------
# Aggregation across series

_AGGREGATE: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum,
    "avg": lambda vs: math.fsum(vs) / len(vs),
    "min": min,
    "max": max,
    "count": lambda vs: float(len(vs)),
}


def _aggregate(node: Aggregation, vector: Vector) -> Vector:
    groups: dict[Labels, list[float]] = {}
    names = frozenset(node.grouping)
    for labels, value in vector.items():
        groups.setdefault(_group_key(labels, names, node.without), []).append(value)
    reduce = _AGGREGATE[node.op]
    return {key: reduce(values) for key, values in groups.items()}


# ---------------------------------------------------------------------------------------------
# Arithmetic


@functools.lru_cache(maxsize=1 << 16)
def _group_key(labels: Labels, names: frozenset[str], without: bool) -> Labels:
    """Labels kept by `by (names)` or `without (names)`; cached as the same series recur."""
    return tuple(p for p in labels if (p[0] in names) != without)


def _divide(a: float, b: float) -> float | None:
    return a / b if b != 0 else None  # dropped, never an exception or a NaN that could alert


_OPS: dict[str, Callable[[float, float], float | None]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _divide,
}


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
    ">=": operator.ge, "<=": operator.le,
}  # fmt: skip


def _binary(op: str, lhs: Value, rhs: Value, matching: VectorMatching | None) -> Value:
    if op in SET_OPERATORS:
        return _set_operation(op, _vector(lhs), _vector(rhs), matching)
    compare = _COMPARE.get(op)
    if compare is not None:
        return _filter(compare, lhs, rhs, matching)
    fn = _OPS[op]
    if isinstance(lhs, float) and isinstance(rhs, float):
        result = fn(lhs, rhs)
        return {} if result is None else result
    if isinstance(lhs, float):
        return _keep({k: fn(lhs, v) for k, v in _vector(rhs).items()})
    if isinstance(rhs, float):
        return _keep({k: fn(v, rhs) for k, v in lhs.items()})
    return _keep({k: fn(a, b) for k, (a, b) in _match(lhs, rhs, matching).items()})


def _filter(
    compare: Callable[[float, float], bool], lhs: Value, rhs: Value, matching: VectorMatching | None
) -> Vector:
    """PromQL's comparison without `bool`: keep the elements for which it holds."""
    if isinstance(lhs, float):  # `5 < x` keeps x's values, as PromQL does
        return {k: v for k, v in _vector(rhs).items() if compare(lhs, v)}
    if isinstance(rhs, float):
        return {k: v for k, v in lhs.items() if compare(v, rhs)}
    return {k: a for k, (a, b) in _match(lhs, rhs, matching).items() if compare(a, b)}


def _set_operation(op: str, lhs: Vector, rhs: Vector, matching: VectorMatching | None) -> Vector:
    """`and`, `or`, `unless`: elements chosen by match signature, keeping their own labels."""
    sign = _signer(matching)
    right = set(map(sign, rhs))
    if op == "or":
        left = set(map(sign, lhs))
        return {**lhs, **{k: v for k, v in rhs.items() if sign(k) not in left}}
    keep = op == "and"
    return {k: v for k, v in lhs.items() if (sign(k) in right) is keep}


def _signer(matching: VectorMatching | None) -> Callable[[Labels], Labels]:
    """The labels two elements must share to match: all of them, or those on()/ignoring() pick."""
    if matching is None:
        return lambda labels: labels
    names, on = frozenset(matching.labels), matching.on
    return lambda labels: tuple(p for p in labels if (p[0] in names) == on)


def _keep(results: dict[Labels, float | None]) -> Vector:
    return {k: v for k, v in results.items() if v is not None}


def _match(
    lhs: Vector, rhs: Vector, matching: VectorMatching | None
) -> dict[Labels, tuple[float, float]]:
    """One-to-one pairs keyed by their match signature (also the result's labels)."""
    left, right = _by_signature(lhs, matching), _by_signature(rhs, matching)
    return {key: (value, right[key]) for key, value in left.items() if key in right}


def _by_signature(vector: Vector, matching: VectorMatching | None) -> Vector:
    if matching is None:
        return vector
    sign = _signer(matching)
    out: Vector = {}
    ambiguous: set[Labels] = set()
    for labels, value in vector.items():
        key = sign(labels)
        if key in out:
            ambiguous.add(key)  # many-to-one needs group_left, which we do not have: drop
        out[key] = value
    for key in ambiguous:
        del out[key]
    return out
