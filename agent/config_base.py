"""Building blocks of the config models: strict models, durations, sizes and secrets."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, WithJsonSchema
from pydantic_core import PydanticCustomError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?i?B?)?\s*$", re.IGNORECASE)


def parse_duration(value: object) -> float:
    """`90`, `"90s"`, `"5m"`, `"1h30m"`, `"500ms"` → seconds."""
    if isinstance(value, bool):
        raise PydanticCustomError("duration", "invalid duration '{v}'", {"v": value})
    if isinstance(value, int | float):
        if value < 0:
            raise PydanticCustomError("duration", "duration must not be negative")
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise PydanticCustomError("duration", "invalid duration '{v}'", {"v": text})
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def parse_size(value: object) -> float:
    """`1048576`, `"100MiB"`, `"2G"` → bytes (K/M/G are powers of 1000, Ki/Mi/Gi of 1024)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _SIZE.match(str(value))
    if not match:
        raise PydanticCustomError("size", "invalid size '{v}'", {"v": value})
    number, unit = float(match.group(1)), (match.group(2) or "").upper().rstrip("B")
    if not unit:
        return number
    base = 1024 if unit.endswith("I") else 1000
    return float(number * base ** ("KMGTP".index(unit[0]) + 1))


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": ["string", "number"], "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$"}),
]
Size = Annotated[
    float,
    BeforeValidator(parse_size),
    WithJsonSchema({"type": ["string", "number"], "pattern": r"^\d+(\.\d+)?\s*([KMGTP]i?B?)?$"}),
]


def _secret(value: object) -> SecretStr:
    """A secret is `${ENV_VAR}` (resolved now) or a literal; `*_file` siblings read files."""
    if isinstance(value, SecretStr):
        return value
    text = str(value)
    match = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)
    if match:
        name = match.group(1)
        if name not in os.environ:
            raise PydanticCustomError("secret", "environment variable {n} is not set", {"n": name})
        return SecretStr(os.environ[name])
    return SecretStr(text)


Secret = Annotated[SecretStr, BeforeValidator(_secret), WithJsonSchema({"type": "string"})]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def read_secret_file(path: Path | None, field: str) -> SecretStr | None:
    """The secret in `path` (stripped), for a `*_file` setting named `field`; None without one."""
    if path is None:
        return None
    try:
        return SecretStr(path.read_text().strip())
    except OSError as exc:
        raise PydanticCustomError(
            "secret_file",
            "{f}: cannot read {p}: {e}",
            {"f": field, "p": str(path), "e": exc.strerror},
        ) from None


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError(
            "regex", "invalid regular expression: {e}", {"e": str(exc)}
        ) from None
    return value


def _collect_secrets(value: object, found: list[str]) -> None:
    if isinstance(value, SecretStr):
        found.append(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _collect_secrets(getattr(value, name), found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_secrets(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_secrets(item, found)


def _url_password(url: str) -> list[str]:
    match = re.match(r"^[a-z0-9+]+://[^:/@]*:([^@]+)@", url)
    return [match.group(1)] if match else []


class PrioritySla(Strict):
    response: Duration
    resolution: Duration


class RuleActions(Strict):
    ticket: bool = False
    runbook: str | None = None
    approval: Literal["auto", "required"] = "required"
    vars: dict[str, str] = {}
    """Runbook variables; `{label}` is replaced by the alert's label value (never Jinja)."""


_RULE_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def check_rule_name(value: str) -> str:
    """Rule names are identifiers: they become the `alertname` label."""
    if not _RULE_NAME.match(value):
        raise PydanticCustomError("name", "rule names are identifiers ([a-zA-Z_][a-zA-Z0-9_]*)")
    return value


def check_expr(value: str) -> str:
    """An indicator expression that parses (agent.expr owns the grammar)."""
    from agent import expr
    from agent.errors import ExpressionError

    try:
        expr.parse(value)
    except ExpressionError as exc:
        raise PydanticCustomError("expr", "{e}", {"e": str(exc)}) from None
    return value
