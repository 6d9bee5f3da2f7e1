"""Validate YAML against a pydantic model and report every problem with its path and line."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ValidationError

from agent.errors import ConfigError, ConfigProblem

M = typing.TypeVar("M", bound=BaseModel)


Loc = tuple[str | int, ...]


def _line_map(node: yaml.Node, loc: Loc = ()) -> Iterator[tuple[Loc, int]]:
    """Every (path, 1-based line) in a composed YAML tree; keys map to their key's line."""
    yield loc, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, key.value)
            yield child, key.start_mark.line + 1
            yield from ((p, ln) for p, ln in _line_map(value, child) if p != child)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _line_map(item, (*loc, index))


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names (aliases) valid at `loc`, for did-you-mean hints."""
    current: Any = model
    for part in loc:
        current = _descend(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _descend(annotation: Any, part: str | int) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            if part in (name, info.alias):
                return _unwrap(info.annotation)
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple) and args:
        return _unwrap(args[0])
    if origin is dict and len(args) == 2:
        return _unwrap(args[1])
    return None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(inner[0]) if len(inner) == 1 else annotation
    return annotation


def _problem(err: Any, model: type[BaseModel], lines: dict[Loc, int], source: str) -> ConfigProblem:
    loc: Loc = tuple(p for p in err["loc"] if isinstance(p, int | str))
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        message = "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
        if known and not close:
            message += f"; expected one of: {', '.join(sorted(known))}"
    elif err["type"] == "value_error" and message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
    return ConfigProblem(format_loc(loc), message, line, source)


def read_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    """The mapping in `text` and the line of every path in it; ConfigError if not YAML."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem("", f"not valid YAML: {exc}", line, source)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem("", "the top level must be a mapping", 1, source)])
    return data, dict(_line_map(node)) if node is not None else {}


def validate(
    model: type[M],
    data: dict[str, Any],
    lines: dict[Loc, int],
    source: str,
    cross_check: Callable[[M], Iterable[tuple[Loc, str]]] = lambda _: (),
) -> M:
    """Validate `data`; raise ConfigError listing every problem, pydantic's and cross-checks'."""
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(e, model, lines, source) for e in exc.errors()]) from None
    problems = [
        ConfigProblem(format_loc(loc), msg, lines.get(loc), source)
        for loc, msg in cross_check(config)
    ]
    if problems:
        raise ConfigError(problems)
    return config
