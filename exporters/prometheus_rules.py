"""Prometheus alerting rules from OpsWatch rules, for every rule PromQL can express.

Our expression language is a PromQL subset, so most rules translate: window functions become
`*_over_time`, `rate`, `delta`, `increase`, `changes`, `absent_over_time`, `predict_linear`;
`time_to_threshold` becomes `(T - predict_linear(x[w], 0)) / (deriv(x[w]) != 0) >= 0`; and a
divisor `d` becomes `(d != 0)` so division by zero drops the element as ours does. Each level
is one alerting rule `expr op threshold` with `for`, `keep_firing_for` (from `clear_for`) and a
`severity` label. What Prometheus does differently is listed per rule in `notes`; what it
cannot do at all is in `skipped`, with the reason (see docs/risk.md, "Prometheus export").
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.config import RuleConfig
from agent.expr import parse
from agent.expr_ast import (
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
from agent.model import Level
from agent.rules import format_value
from agent.series import Matcher

_OVER_TIME = {"last", "avg", "min", "max", "sum", "count"}
_SAME_NAME = {"rate", "delta", "increase", "changes", "predict_linear"}
_EXTRAPOLATED = {"rate", "delta", "increase"}
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}  # fmt: skip
_PYTHON_ONLY_REGEX = re.compile(r"\(\?[=!<>]|\(\?P=|\\[1-9]|\\[AZ]|[*+?}][+]")
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
_DURATION_UNITS = (("y", 31_536_000_000), ("w", 604_800_000), ("d", 86_400_000),
                   ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))  # fmt: skip


class Unexportable(Exception):
    """A rule or expression that Prometheus cannot express; the message says why."""


@dataclass(frozen=True, slots=True)
class RuleNote:
    """A rule and what is said about it: why it was skipped, or how Prometheus differs."""

    rule: str
    text: str


@dataclass(frozen=True, slots=True)
class RuleExport:
    """A Prometheus rule file (dump it as YAML) and what did not translate exactly."""

    file: dict[str, Any]
    skipped: list[RuleNote] = field(default_factory=list)
    notes: list[RuleNote] = field(default_factory=list)
    """Rules exported with a difference from OpsWatch's behaviour, and what it is."""


def export_rules(
    rules: Sequence[RuleConfig], group: str = "opswatch", interval: float | None = None
) -> RuleExport:
    """Translate `rules` into one Prometheus rule group, skipping what PromQL cannot say."""
    out: list[dict[str, Any]] = []
    skipped: list[RuleNote] = []
    notes: list[RuleNote] = []
    for rule in rules:
        try:
            promql, expr_notes = translate(parse(rule.expr))
        except Unexportable as exc:
            skipped.append(RuleNote(rule.name, str(exc)))
            continue
        out.extend(_alerting_rules(rule, promql))
        notes.extend(RuleNote(rule.name, note) for note in expr_notes + _rule_notes(rule))
    body: dict[str, Any] = {"name": group, "rules": out}
    if interval is not None:
        body["interval"] = duration(interval)
    return RuleExport({"groups": [body]}, skipped, notes)


def _alerting_rules(rule: RuleConfig, promql: str) -> list[dict[str, Any]]:
    out = []
    for level, threshold in sorted(rule.thresholds().items(), key=lambda item: item[0].rank):
        entry: dict[str, Any] = {
            "alert": rule.name,
            "expr": f"{promql} {rule.op} {number(threshold)}",
        }
        if rule.for_ > 0:
            entry["for"] = duration(rule.for_)
        if rule.clear_for > 0:
            entry["keep_firing_for"] = duration(rule.clear_for)
        entry["labels"] = {**rule.labels, "severity": level.value}
        if rule.annotations:
            entry["annotations"] = {k: template(v, threshold) for k, v in rule.annotations.items()}
        out.append(entry)
    return out


def _rule_notes(rule: RuleConfig) -> list[str]:
    notes = []
    lowest = min(rule.thresholds().items(), key=lambda item: item[0].rank)[1]
    if rule.clear is not None and rule.clear != lowest:
        notes.append(
            f"hysteresis: Prometheus resolves at the threshold {number(lowest)}, "
            f"not at clear {number(rule.clear)}"
        )
    if len(rule.thresholds()) > 1 and rule.for_ > 0:
        notes.append("one alert per level: a higher level waits its own `for` after crossing")
    if any(Level.INFO is lv for lv in rule.thresholds()):
        notes.append("the info level is exported as severity=info")
    return notes


# ---------------------------------------------------------------------------------------------
# Expressions


def translate(node: Expr) -> tuple[str, list[str]]:
    """PromQL text for `node`, and notes on where Prometheus' answer can differ."""
    notes: list[str] = []
    return _promql(node, notes), notes


def _promql(node: Expr, notes: list[str]) -> str:
    if isinstance(node, Number):
        return number(node.value)
    if isinstance(node, Selector):
        return selector(node)
    if isinstance(node, Call):
        return _call(node, notes)
    if isinstance(node, Aggregation):
        mode = "without" if node.without else "by"
        grouping = f" {mode} ({', '.join(node.grouping)})" if node.grouping or node.without else ""
        return f"{node.op}{grouping} ({_promql(node.expr, notes)})"
    if isinstance(node, Unary):
        return f"-({_promql(node.expr, notes)})"
    if isinstance(node, Binary):
        return _binary(node, notes)
    raise Unexportable(f"a {type(node).__name__} cannot stand alone")


def _call(node: Call, notes: list[str]) -> str:
    window = range_selector(node.arg)
    if node.func in _EXTRAPOLATED:
        notes.append(
            f"{node.func}: Prometheus extrapolates to the window's edges; OpsWatch does not"
        )
    if node.func in _OVER_TIME:
        return f"{node.func}_over_time({window})"
    if node.func == "absent":
        return f"absent_over_time({window})"
    if node.func == "time_to_threshold":
        line = f"predict_linear({window}, 0)"
        return f"(({number(node.params[0])} - {line}) / (deriv({window}) != 0) >= 0)"
    if node.func in _SAME_NAME:
        params = "".join(f", {number(p)}" for p in node.params)
        return f"{node.func}({window}{params})"
    raise Unexportable(f"no PromQL function for {node.func}()")


def _binary(node: Binary, notes: list[str]) -> str:
    lhs, rhs = _promql(node.lhs, notes), _promql(node.rhs, notes)
    if node.op == "/":
        rhs = _safe_divisor(node.rhs, rhs)
    matching = _matching(node.matching)
    if node.matching is not None and node.op not in ("and", "or", "unless"):
        notes.append("on()/ignoring(): where several series share a key, OpsWatch drops them "
                     "and Prometheus fails the evaluation (many-to-many)")  # fmt: skip
    return f"({lhs} {node.op}{matching} {rhs})"


def _safe_divisor(node: Expr, text: str) -> str:
    """OpsWatch leaves out an element divided by zero; Prometheus would give ±Inf or NaN."""
    constant = _constant(node)
    if constant is None:
        return f"({text} != 0)"
    if constant == 0:
        raise Unexportable("divides by a constant zero")
    return text


def _constant(node: Expr) -> float | None:
    """The value of an expression made only of numbers, else None."""
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Unary):
        inner = _constant(node.expr)
        return None if inner is None else -inner
    if isinstance(node, Binary) and node.op in _ARITHMETIC:
        a, b = _constant(node.lhs), _constant(node.rhs)
        if a is None or b is None or (node.op == "/" and b == 0):
            return None
        return _ARITHMETIC[node.op](a, b)
    return None


def _matching(matching: VectorMatching | None) -> str:
    if matching is None:
        return ""
    return f" {'on' if matching.on else 'ignoring'}({', '.join(matching.labels)})"


def selector(node: Selector) -> str:
    """`name{label="value", ...}` with Go string escapes; refuses Python-only regexes."""
    if not node.matchers:
        return node.name
    return f"{node.name}{{{', '.join(map(_matcher, node.matchers))}}}"


def _matcher(m: Matcher) -> str:
    if m.op in ("=~", "!~") and _PYTHON_ONLY_REGEX.search(m.value):
        raise Unexportable(f"regular expression {m.value!r} uses syntax RE2 does not have")
    return f'{m.name}{m.op}"{_go_string(m.value)}"'


def _go_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def range_selector(node: RangeSelector) -> str:
    return f"{selector(node.selector)}[{duration(node.range)}]"


def number(value: float) -> str:
    """A float as PromQL reads it; negatives in parentheses so they survive any context."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "(-Inf)"
    text = str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)
    return f"({text})" if value < 0 else text


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration: 150 → `2m30s`, 0.5 → `500ms`."""
    millis = round(seconds * 1000)
    if millis <= 0:
        return "0s"
    parts = []
    for unit, size in _DURATION_UNITS:
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Annotations


def template(text: str, threshold: float) -> str:
    """Our `{label}`, `{value}`, `{threshold}` as Go template actions; all else stays literal."""
    out, pos = [], 0
    for match in _PLACEHOLDER.finditer(text):
        out.append(_literal(text[pos : match.start()]))
        out.append(_action(match.group(1), threshold))
        pos = match.end()
    out.append(_literal(text[pos:]))
    return "".join(out)


def _action(name: str, threshold: float) -> str:
    if name == "value":
        return "{{ $value }}"
    if name == "threshold":
        return format_value(threshold)
    return f"{{{{ $labels.{name} }}}}"


def _literal(text: str) -> str:
    return text.replace("{{", '{{ "{{" }}')
