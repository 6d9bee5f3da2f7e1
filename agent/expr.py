"""The indicator expression language: a small, safe, PromQL-flavoured grammar (see docs/rules.md).

`parse(text)` tokenizes and parses by precedence climbing into a tree of frozen dataclasses, and
type-checks it (a range selector only as a window function's argument). The node types live in
`agent.expr_ast` and are re-exported here. Nothing is ever passed to
`eval`; `agent.evaluate` walks the tree. Every error is an `ExpressionError` with its offset.

    expr      := unary (BINARY_OP matching? unary)*   (PromQL precedence, left-associative)
    BINARY_OP := "or" | "and" | "unless" | "==" | "!=" | ">" | "<" | ">=" | "<=" | "+" | "-"
                 | "*" | "/"
    unary     := ("-" | "+") unary | primary
    primary   := NUMBER | DURATION | "(" expr ")" | call | aggregation | selector range?
    range     := "[" DURATION "]"
    selector  := NAME ("{" (LABEL ("=" | "!=" | "=~" | "!~") STRING ","?)* "}")?
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from agent.errors import ExpressionError
from agent.expr_ast import (
    AGGREGATIONS,
    COMPARISONS,
    PREDICTIONS,
    SET_OPERATORS,
    WINDOW_FUNCTIONS,
    Aggregation,
    ArithmeticOp,
    Binary,
    BinaryOp,
    Call,
    CompareOp,
    Expr,
    Kind,
    Number,
    RangeSelector,
    Selector,
    SetOp,
    Unary,
    VectorMatching,
    children,
    kind,
)
from agent.series import Matcher, MatchOp

__all__ = [
    "AGGREGATIONS", "COMPARISONS", "MAX_DEPTH", "PREDICTIONS", "SET_OPERATORS",
    "WINDOW_FUNCTIONS", "Aggregation", "ArithmeticOp", "Binary", "BinaryOp", "Call",
    "CompareOp", "Expr", "Kind", "Number", "RangeSelector", "Selector", "SetOp", "Token",
    "Unary", "VectorMatching", "children", "kind", "parse", "tokenize",
]  # fmt: skip


_PRECEDENCE = {
    "or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, ">": 3, "<": 3, ">=": 3, "<=": 3,
    "+": 4, "-": 4, "*": 5, "/": 5,
}  # fmt: skip
"""PromQL's binding strengths (without `^`, `%` and `atan2`)."""
MAX_DEPTH = 64
"""Deeper expressions are refused: evaluation recurses once per level."""

# ---------------------------------------------------------------------------------------------
# Tokens

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536e3}
_DURATION = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+(?![\w.])")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")
_WORD = re.compile(r"[\w.]+")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_SPACE = re.compile(r"\s+")
_PUNCT = ("=~", "!~", "!=", "==", ">=", "<=", "(", ")", "{", "}", "[", "]", ",", "+", "-", "*",
          "/", "=", ">", "<")  # fmt: skip
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}

TokenType = Literal["name", "number", "duration", "string", "punct", "end"]


@dataclass(frozen=True, slots=True)
class Token:
    type: TokenType
    text: str
    pos: int
    value: float | str = ""


def tokenize(text: str) -> Iterator[Token]:
    """Split `text` into tokens, ending with an `end` token."""
    pos = 0
    while pos < len(text):
        space = _SPACE.match(text, pos)
        if space:
            pos = space.end()
            continue
        token = _token_at(text, pos)
        yield token
        pos += len(token.text)
    yield Token("end", "", len(text))


def _token_at(text: str, pos: int) -> Token:
    char = text[pos]
    if char.isdigit() or (char == "." and text[pos + 1 : pos + 2].isdigit()):
        return _number_at(text, pos)
    if char in "\"'":
        return _string_at(text, pos)
    name = _NAME.match(text, pos)
    if name:
        return Token("name", name.group(), pos)
    for punct in _PUNCT:
        if text.startswith(punct, pos):
            return Token("punct", punct, pos)
    raise ExpressionError(f"unexpected character {char!r}", pos)


def _number_at(text: str, pos: int) -> Token:
    duration = _DURATION.match(text, pos)
    if duration:
        seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(duration.group()))
        return Token("duration", duration.group(), pos, seconds)
    number = _NUMBER.match(text, pos)
    if number:
        return Token("number", number.group(), pos, float(number.group()))
    word = _WORD.match(text, pos)
    bad = word.group() if word else text[pos]
    raise ExpressionError(
        f"invalid number or duration {bad!r} (durations look like 30s, 5m, 1h30m)", pos
    )


def _string_at(text: str, pos: int) -> Token:
    quote, out, i = text[pos], [], pos + 1
    while i < len(text) and text[i] != quote:
        if text[i] == "\\" and i + 1 < len(text):
            # unknown escapes keep their backslash so regexes like "a\.b" mean what they say
            out.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    if i >= len(text):
        raise ExpressionError("unterminated string", pos)
    return Token("string", text[pos : i + 1], pos, "".join(out))


# ---------------------------------------------------------------------------------------------
# Parser


def parse(text: str) -> Expr:
    """Parse and type-check an indicator expression; raise `ExpressionError` if it is not valid."""
    parser = _Parser(list(tokenize(text)))
    tree = parser.expr(0)
    parser.expect_end()
    if kind(tree) is Kind.RANGE:
        raise _range_misplaced(tree)
    _check_depth(tree)
    return tree


def _check_depth(node: Expr, depth: int = 0) -> None:
    """Refuse trees too deep to evaluate recursively (the check itself stops at the limit)."""
    if depth > MAX_DEPTH:
        raise ExpressionError(f"expression is nested more than {MAX_DEPTH} levels deep", node.pos)
    for child in children(node):
        _check_depth(child, depth + 1)


def _range_misplaced(node: Expr) -> ExpressionError:
    return ExpressionError(
        "a range selector like x[5m] is only allowed as the argument of a window function "
        "such as avg(x[5m]) or rate(x[5m])",
        node.pos,
    )


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.nesting = 0

    def nest(self) -> None:
        """Count one level of recursion, so `((((...` fails cleanly instead of overflowing."""
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise ExpressionError(
                f"expression is nested more than {MAX_DEPTH} levels deep", self.peek.pos
            )

    @property
    def peek(self) -> Token:
        return self.tokens[self.index]

    def next(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1 if token.type != "end" else 0
        return token

    def at(self, text: str, offset: int = 0) -> bool:
        token = self.tokens[min(self.index + offset, len(self.tokens) - 1)]
        return token.type in ("punct", "name") and token.text == text

    def expect(self, text: str, what: str = "") -> Token:
        if not self.at(text):
            raise _unexpected(self.peek, f"expected '{text}'" + (f" {what}" if what else ""))
        return self.next()

    def expect_end(self) -> None:
        if self.peek.type != "end":
            raise _unexpected(self.peek, "expected an operator or the end of the expression")

    def expr(self, min_prec: int) -> Expr:
        self.nest()
        lhs = self.unary()
        while True:
            token = self.peek
            infix = token.type == "punct" or token.text in SET_OPERATORS
            prec = _PRECEDENCE.get(token.text, 0) if infix else 0
            if prec <= min_prec:
                self.nesting -= 1
                return lhs
            self.next()
            matching = self.matching()
            if self.at("bool") and token.text in COMPARISONS:
                raise ExpressionError("the bool modifier is not supported", self.peek.pos)
            rhs = self.expr(prec)  # left-associative: the right side binds only tighter operators
            lhs = _binary(token, lhs, rhs, matching)

    def matching(self) -> VectorMatching | None:
        if not (self.at("on") or self.at("ignoring")) or not self.at("(", 1):
            return None
        on = self.next().text == "on"
        return VectorMatching(on, self.label_list())

    def unary(self) -> Expr:
        token = self.peek
        if token.type == "punct" and token.text in ("-", "+"):
            self.next()
            self.nest()
            operand = self.unary()
            self.nesting -= 1
            if kind(operand) is Kind.RANGE:
                raise _range_misplaced(operand)
            if token.text == "+":
                return operand
            if isinstance(operand, Number):  # fold, so -1h is a literal parameter
                return Number(-operand.value, token.pos)
            return Unary(operand, token.pos)
        return self.primary()

    def primary(self) -> Expr:
        token = self.next()
        if token.type in ("number", "duration"):
            assert isinstance(token.value, float)
            return Number(token.value, token.pos)
        if token.type == "punct" and token.text == "(":
            inner = self.expr(0)
            self.expect(")", "to close the '(' at position " + str(token.pos))
            return inner
        if token.type == "name":
            return self.named(token)
        if token.type == "punct" and token.text == "{":
            raise ExpressionError("a selector needs a metric name before '{'", token.pos)
        raise _unexpected(token, "expected a number, a metric name, a function or '('")

    def named(self, token: Token) -> Expr:
        grouped = token.text in AGGREGATIONS and (self.at("by") or self.at("without"))
        if grouped or self.at("("):
            return self.function(token)
        node = self.selector(token)
        if self.at("["):
            return self.range(node)
        return node

    def function(self, token: Token) -> Expr:
        name = token.text
        if name not in AGGREGATIONS and name not in WINDOW_FUNCTIONS:
            known = ", ".join(sorted(AGGREGATIONS | WINDOW_FUNCTIONS.keys()))
            raise ExpressionError(f"unknown function '{name}' (known: {known})", token.pos)
        grouping = self.grouping()
        self.expect("(", f"after '{name}'")
        args = [self.expr(0)]
        while self.at(","):
            self.next()
            args.append(self.expr(0))
        self.expect(")", f"to close '{name}('")
        if grouping is None and name in AGGREGATIONS:  # PromQL also allows `sum(x) by (a)`
            grouping = self.grouping()
        return _function(token, args, grouping)

    def grouping(self) -> tuple[tuple[str, ...], bool] | None:
        if not (self.at("by") or self.at("without")):
            return None
        without = self.next().text == "without"
        return self.label_list(), without

    def label_list(self) -> tuple[str, ...]:
        self.expect("(", "before the label list")
        labels: list[str] = []
        while not self.at(")"):
            labels.append(self.label_name())
            if not self.at(")"):
                self.expect(",", "between labels")
        self.next()
        return tuple(labels)

    def label_name(self) -> str:
        token = self.next()
        if token.type != "name" or ":" in token.text:
            raise _unexpected(token, "expected a label name")
        return token.text

    def selector(self, token: Token) -> Selector:
        matchers: list[Matcher] = []
        if self.at("{"):
            self.next()
            while not self.at("}"):
                matchers.append(self.matcher())
                if not self.at("}"):
                    self.expect(",", "between label matchers")
            self.next()
        return Selector(token.text, tuple(matchers), token.pos)

    def matcher(self) -> Matcher:
        label = self.label_name()
        op = self.next()
        if op.text not in ("=", "!=", "=~", "!~") or op.type != "punct":
            raise _unexpected(op, "expected one of =, !=, =~, !~")
        value = self.next()
        if value.type != "string":
            raise _unexpected(value, "expected a quoted string")
        assert isinstance(value.value, str)
        return _matcher(label, op, value)

    def range(self, node: Selector) -> RangeSelector:
        self.expect("[")
        token = self.next()
        if token.type != "duration":
            raise _unexpected(token, "expected a duration like 30s, 5m or 1h30m")
        assert isinstance(token.value, float)
        if token.value <= 0:
            raise ExpressionError("a range must be longer than zero", token.pos)
        self.expect("]", "after the range duration")
        return RangeSelector(node, token.value, node.pos)


def _unexpected(token: Token, expectation: str) -> ExpressionError:
    found = "the end of the expression" if token.type == "end" else f"'{token.text}'"
    return ExpressionError(f"{expectation}, found {found}", token.pos)


def _matcher(label: str, op: Token, value: Token) -> Matcher:
    assert isinstance(value.value, str)
    op_text: MatchOp = op.text  # type: ignore[assignment]  # checked by the caller
    try:
        return Matcher.make(label, op_text, value.value)
    except re.error as exc:
        raise ExpressionError(
            f"invalid regular expression {value.text}: {exc.msg}", value.pos
        ) from None


def _binary(token: Token, lhs: Expr, rhs: Expr, matching: VectorMatching | None) -> Binary:
    for side in (lhs, rhs):
        if kind(side) is Kind.RANGE:
            raise _range_misplaced(side)
    scalars = [kind(lhs), kind(rhs)].count(Kind.SCALAR)
    if matching is not None and scalars:
        raise ExpressionError("on()/ignoring() only apply between two vectors", token.pos)
    if token.text in SET_OPERATORS and scalars:
        raise ExpressionError(f"'{token.text}' needs a set of series on both sides", token.pos)
    if token.text in COMPARISONS and scalars == 2:
        raise ExpressionError("a comparison needs a set of series on one side", token.pos)
    op: BinaryOp = token.text  # type: ignore[assignment]  # a key of _PRECEDENCE
    return Binary(op, lhs, rhs, matching, token.pos)


def _function(
    token: Token, args: list[Expr], grouping: tuple[tuple[str, ...], bool] | None
) -> Aggregation | Call:
    name, first = token.text, args[0]
    if kind(first) is Kind.RANGE and grouping is None:
        return _window_call(token, args)
    if name not in AGGREGATIONS:
        raise ExpressionError(
            f"{name}() needs a range selector argument, like {name}(x[5m])", token.pos
        )
    if len(args) != 1:
        raise ExpressionError(f"{name}() takes one argument", token.pos)
    if kind(first) is not Kind.VECTOR:
        hint = " (by/without group an instant vector)" if kind(first) is Kind.RANGE else ""
        raise ExpressionError(f"{name}() needs an instant vector argument{hint}", token.pos)
    labels, without = grouping or ((), False)
    return Aggregation(name, first, labels, without, token.pos)


def _window_call(token: Token, args: list[Expr]) -> Call:
    name, arg = token.text, args[0]
    assert isinstance(arg, RangeSelector)
    params = WINDOW_FUNCTIONS[name]
    if len(args) != 1 + params:
        raise ExpressionError(
            f"{name}() takes {1 + params} argument(s), got {len(args)}", token.pos
        )
    values: list[float] = []
    for extra in args[1:]:
        if not isinstance(extra, Number):
            raise ExpressionError(f"{name}() needs a number or duration here", extra.pos)
        values.append(extra.value)
    return Call(name, arg, tuple(values), token.pos)
