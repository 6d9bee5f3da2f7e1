"""Evaluation of a parsed indicator expression against series windows at one instant.

Pure: the result depends only on (expression, series, now). Values are instant vectors
(`dict[Labels, float]`: series labels never carry the metric name, so a vector's label sets are
unique) or plain floats for scalars. Nothing raises at evaluation time: an element with no
defined value (division by zero, too few points for `rate`) is left out of the result.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from agent.expr import (
    Aggregation,
    Binary,
    Call,
    Expr,
    Number,
    RangeSelector,
    Selector,
    Unary,
    VectorMatching,
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
    for series in selected:
        lo, hi = series.span(now - STALENESS, now)
        if hi > lo:
            out[series.labels] = series.values[hi - 1]
    return out


# ---------------------------------------------------------------------------------------------
# Window functions: one series' points in the window -> a value, or None when undefined


class Window(NamedTuple):
    """The points of one series inside a range, with the evaluation time and call parameters."""

    ts: Sequence[float]
    vs: Sequence[float]
    now: float
    params: tuple[float, ...]


def _increase(w: Window) -> float | None:
    if len(w.vs) < 2:
        return None
    # a drop means the counter restarted from zero, so the new value is all increase
    return math.fsum(b - a if b >= a else b for a, b in itertools.pairwise(w.vs))


def _rate(w: Window) -> float | None:
    increase, span = _increase(w), w.ts[-1] - w.ts[0]
    return increase / span if increase is not None and span > 0 else None


def _predict_linear(w: Window) -> float | None:
    """Least-squares line through the window, read `params[0]` seconds after `now`."""
    n, vs = len(w.vs), w.vs
    xs = [t - w.now for t in w.ts]  # relative times keep the sums well-conditioned
    sx, sy = math.fsum(xs), math.fsum(vs)
    sxx = math.fsum(x * x for x in xs)
    sxy = math.fsum(x * y for x, y in zip(xs, vs, strict=True))
    denominator = n * sxx - sx * sx
    if n < 2 or denominator == 0:
        return None
    slope = (n * sxy - sx * sy) / denominator
    return (sy - slope * sx) / n + slope * w.params[0]


WINDOW: dict[str, Callable[[Window], float | None]] = {
    "last": lambda w: w.vs[-1],
    "avg": lambda w: math.fsum(w.vs) / len(w.vs),
    "min": lambda w: min(w.vs),
    "max": lambda w: max(w.vs),
    "sum": lambda w: math.fsum(w.vs),
    "count": lambda w: float(len(w.vs)),
    "delta": lambda w: w.vs[-1] - w.vs[0] if len(w.vs) >= 2 else None,  # gauges: no resets
    "increase": _increase,
    "rate": _rate,
    "changes": lambda w: float(sum(a != b for a, b in itertools.pairwise(w.vs))),
    "predict_linear": _predict_linear,
}


def _call(node: Call, view: SeriesView, now: float) -> Vector:
    selector = node.arg.selector
    selected = view.select(selector.name, selector.matchers)
    if node.func == "absent":
        return _absent(node.arg, selected, now)
    fn, out = WINDOW[node.func], {}
    for series in selected:
        lo, hi = series.span(now - node.arg.range, now)
        if hi > lo:
            window = Window(series.timestamps[lo:hi], series.values[lo:hi], now, node.params)
            value = fn(window)
            if value is not None:
                out[series.labels] = value
    return out


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
        key = tuple(p for p in labels if (p[0] in names) != node.without)
        groups.setdefault(key, []).append(value)
    reduce = _AGGREGATE[node.op]
    return {key: reduce(values) for key, values in groups.items()}


# ---------------------------------------------------------------------------------------------
# Arithmetic


def _divide(a: float, b: float) -> float | None:
    return a / b if b != 0 else None  # dropped, never an exception or a NaN that could alert


_OPS: dict[str, Callable[[float, float], float | None]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _divide,
}


def _binary(op: str, lhs: Value, rhs: Value, matching: VectorMatching | None) -> Value:
    fn = _OPS[op]
    if isinstance(lhs, float) and isinstance(rhs, float):
        result = fn(lhs, rhs)
        return {} if result is None else result
    if isinstance(lhs, float):
        return _keep({k: fn(lhs, v) for k, v in _vector(rhs).items()})
    if isinstance(rhs, float):
        return _keep({k: fn(v, rhs) for k, v in lhs.items()})
    return _keep({k: fn(a, b) for k, (a, b) in _match(lhs, rhs, matching).items()})


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
    names = frozenset(matching.labels)
    out: Vector = {}
    ambiguous: set[Labels] = set()
    for labels, value in vector.items():
        key = tuple(p for p in labels if (p[0] in names) == matching.on)
        if key in out:
            ambiguous.add(key)  # many-to-one needs group_left, which we do not have: drop
        out[key] = value
    for key in ambiguous:
        del out[key]
    return out
