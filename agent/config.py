"""agent.yaml as pydantic v2 models, and its loader that reports every problem with its location.

`load(path)` returns an `AgentConfig` or raises `ConfigError` carrying one `ConfigProblem` per
problem (`rules[2].for: invalid duration '5x' (line 41)`); unknown keys come with a did-you-mean
hint. Relative paths in the file are taken relative to the file's own folder.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agent.errors import ConfigError, ConfigProblem, ExpressionError
from agent.model import Level, Priority

DEFAULT_PORT = 10790
"""Outside 9100-9999 (fully allocated to exporters) and /etc/services."""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?i?B?)?\s*$", re.IGNORECASE)
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


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


def _read_secret_file(path: Path | None, field: str) -> SecretStr | None:
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


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    audit_file: Path | None = None
    """Audit lines (approvals, runs) also go here, one JSON object a line."""


class AgentSection(Strict):
    name: str = Field(default_factory=socket.gethostname)
    """Value of the `host` label on host samples, alerts and tickets."""
    state_dir: Path = Path("state")
    listen: str = f"0.0.0.0:{DEFAULT_PORT}"
    log: LogConfig = LogConfig()
    labels: dict[str, str] = {}
    """Extra labels for this host's assets (e.g. `criticality: high`)."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise PydanticCustomError("listen", "expected HOST:PORT, got '{v}'", {"v": value})
        return value

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"  # noqa: S104

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class DatabaseConfig(Strict):
    url: Secret | None = None
    """SQLAlchemy URL; default is a SQLite file in the state directory."""
    url_file: Path | None = None

    @model_validator(mode="after")
    def _from_file(self) -> DatabaseConfig:
        if self.url is not None and self.url_file is not None:
            raise PydanticCustomError("secret_file", "set url or url_file, not both")
        if self.url_file is not None:
            object.__setattr__(self, "url", _read_secret_file(self.url_file, "url_file"))
        return self


class CollectorSettings(Strict):
    enabled: bool = True
    interval: Duration = 15.0
    timeout: Duration = 10.0

    @model_validator(mode="after")
    def _timeout_fits(self) -> CollectorSettings:
        if self.interval <= 0:
            raise PydanticCustomError("interval", "interval must be positive")
        if self.timeout <= 0:
            raise PydanticCustomError("timeout", "timeout must be positive")
        return self


class FilesystemSettings(CollectorSettings):
    exclude_fstypes: str = (
        "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|"
        "iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|"
        "squashfs|sysfs|tracefs|tmpfs|fuse.lxcfs|fuse.gvfsd-fuse)$"
    )
    """node_exporter's default fs-types-exclude (plus tmpfs); a regular expression."""
    exclude_mountpoints: str = "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+)($|/)"

    @field_validator("exclude_fstypes", "exclude_mountpoints")
    @classmethod
    def _regex(cls, value: str) -> str:
        return _check_regex(value)


class DeviceFilterSettings(CollectorSettings):
    exclude: str = "^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$"

    @field_validator("exclude")
    @classmethod
    def _regex(cls, value: str) -> str:
        return _check_regex(value)


class NetdevSettings(CollectorSettings):
    exclude: str = "^$"

    @field_validator("exclude")
    @classmethod
    def _regex(cls, value: str) -> str:
        return _check_regex(value)


class ProcessCheck(Strict):
    name: str
    """The `name` label of the process series."""
    comm: str | None = None
    """Exact process name (what `ps -o comm` shows)."""
    cmdline: str | None = None
    """Regular expression searched in the full command line."""
    user: str | None = None
    service: str | None = None
    """systemd unit that runs it, for the restart runbook."""

    @model_validator(mode="after")
    def _one_matcher(self) -> ProcessCheck:
        if not self.comm and not self.cmdline:
            raise PydanticCustomError("matcher", "set comm or cmdline to say which processes match")
        if self.cmdline:
            _check_regex(self.cmdline)
        return self


class ProcessSettings(CollectorSettings):
    watch: list[ProcessCheck] = []


class PathCheck(Strict):
    name: str
    """The `name` label of the path series."""
    path: Path
    pattern: str = "*"
    """Glob matched against file names inside a directory."""
    recursive: bool = True
    max_entries: int = Field(default=200_000, gt=0)
    """Stop scanning after this many entries (the series says it was truncated)."""


class PathSettings(CollectorSettings):
    watch: list[PathCheck] = []


class CollectorsSection(Strict):
    cpu: CollectorSettings = CollectorSettings()
    loadavg: CollectorSettings = CollectorSettings()
    memory: CollectorSettings = CollectorSettings()
    filesystem: FilesystemSettings = FilesystemSettings()
    diskstats: DeviceFilterSettings = DeviceFilterSettings()
    netdev: NetdevSettings = NetdevSettings()
    boot: CollectorSettings = CollectorSettings(interval=300.0)
    hwmon: CollectorSettings = CollectorSettings(interval=60.0)
    processes: ProcessSettings = ProcessSettings()
    paths: PathSettings = PathSettings(interval=60.0, timeout=30.0)


Comparison = Literal[">", ">=", "<", "<="]


class RuleActions(Strict):
    ticket: bool = False
    runbook: str | None = None
    approval: Literal["auto", "required"] = "required"
    vars: dict[str, str] = {}
    """Runbook variables; `{label}` is replaced by the alert's label value (never Jinja)."""


class RuleConfig(Strict):
    name: str
    expr: str
    """Indicator expression, e.g. `avg(node_load1[5m])` (see docs/rules.md)."""
    op: Comparison = ">"
    info: float | None = None
    warning: float | None = None
    critical: float | None = None
    clear: float | None = None
    """Hysteresis: once firing, the alert clears only past this value (default: lowest level)."""
    for_: Duration = Field(default=0.0, alias="for")
    clear_for: Duration = 0.0
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    actions: RuleActions = RuleActions()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise PydanticCustomError("name", "rule names are identifiers ([a-zA-Z_][a-zA-Z0-9_]*)")
        return value

    @field_validator("expr")
    @classmethod
    def _expr(cls, value: str) -> str:
        from agent import expr  # the rules engine owns the grammar

        try:
            expr.parse(value)
        except ExpressionError as exc:
            raise PydanticCustomError("expr", "{e}", {"e": str(exc)}) from None
        return value

    @model_validator(mode="after")
    def _levels(self) -> RuleConfig:
        levels = self.thresholds()
        if not levels:
            raise PydanticCustomError("levels", "set at least one of info, warning, critical")
        ordered = [levels[lv] for lv in (Level.INFO, Level.WARNING, Level.CRITICAL) if lv in levels]
        rising = self.op.startswith(">")
        if ordered != sorted(ordered, reverse=not rising):
            raise PydanticCustomError(
                "levels",
                "info, warning and critical must grow in the direction of '{op}'",
                {"op": self.op},
            )
        return self

    def thresholds(self) -> dict[Level, float]:
        pairs = (
            (Level.INFO, self.info),
            (Level.WARNING, self.warning),
            (Level.CRITICAL, self.critical),
        )
        return {level: value for level, value in pairs if value is not None}


class RunbookConfig(Strict):
    playbook: str
    """A playbook file in the runbooks folder (an ansible-runner project)."""
    timeout: Duration = 600.0
    vars: dict[str, Any] = {}
    """Trusted variables from this file (e.g. the roots a cleanup may touch)."""


class PrioritySla(Strict):
    response: Duration
    resolution: Duration


def _default_priorities() -> dict[Priority, PrioritySla]:
    return {
        Priority.P1: PrioritySla(response=2 * 3600, resolution=8 * 3600),
        Priority.P2: PrioritySla(response=4 * 3600, resolution=24 * 3600),
        Priority.P3: PrioritySla(response=8 * 3600, resolution=72 * 3600),
    }


class RemediationSection(Strict):
    runbooks_dir: Path | None = None
    """Default: the runbooks shipped with OpsWatch."""
    runbooks: dict[str, RunbookConfig] = {}
    approval_ttl: Duration = 3600.0
    verify_within: Duration = 600.0
    """A succeeded run is `verified` if its alert clears within this time, else `ineffective`."""


class TicketsSection(Strict):
    priorities: dict[Priority, PrioritySla] = Field(default_factory=_default_priorities)
    level_priority: dict[Level, Priority] = {
        Level.CRITICAL: Priority.P1,
        Level.WARNING: Priority.P2,
        Level.INFO: Priority.P3,
    }


class EvaluationSection(Strict):
    interval: Duration = 15.0
    retention: Duration = 3600.0
    """How much history the agent keeps in memory for window functions."""


class AgentConfig(Strict):
    agent: AgentSection = Field(default_factory=AgentSection)
    database: DatabaseConfig = DatabaseConfig()
    collectors: CollectorsSection = CollectorsSection()
    evaluation: EvaluationSection = EvaluationSection()
    rules: list[RuleConfig] = []
    remediation: RemediationSection = RemediationSection()
    tickets: TicketsSection = TicketsSection()

    def secret_values(self) -> list[str]:
        """Every secret in this config, so logs can scrub them."""
        found: list[str] = []
        _collect_secrets(self, found)
        if self.database.url is not None:
            found.extend(_url_password(self.database.url.get_secret_value()))
        return found

    @property
    def database_url(self) -> str:
        if self.database.url is not None:
            return self.database.url.get_secret_value()
        return f"sqlite:///{self.agent.state_dir / 'opswatch.db'}"


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


# ---------------------------------------------------------------------------------------------
# Loading with locations


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError(
            "regex", "invalid regular expression: {e}", {"e": str(exc)}
        ) from None
    return value


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


def _problem(err: Any, lines: dict[Loc, int], source: str) -> ConfigProblem:
    loc: Loc = tuple(p for p in err["loc"] if isinstance(p, int | str))
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        known = _fields_at(AgentConfig, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        message = "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
        if known and not close:
            message += f"; expected one of: {', '.join(sorted(known))}"
    elif err["type"] == "value_error" and message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
    return ConfigProblem(format_loc(loc), message, line, source)


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in the file are relative to the file, not the working directory."""
    agent = data.get("agent")
    if isinstance(agent, dict) and isinstance(agent.get("state_dir"), str):
        agent["state_dir"] = str(base / agent["state_dir"])
    remediation = data.get("remediation")
    if isinstance(remediation, dict) and isinstance(remediation.get("runbooks_dir"), str):
        remediation["runbooks_dir"] = str(base / remediation["runbooks_dir"])


def parse(text: str, source: str = "agent.yaml", base: Path | None = None) -> AgentConfig:
    """Validate YAML text; raise ConfigError listing every problem with its path and line."""
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
    lines = dict(_line_map(node)) if node is not None else {}
    if base is not None:
        _resolve_paths(data, base)
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(e, lines, source) for e in exc.errors()]) from None
    problems = [
        ConfigProblem(format_loc(loc), msg, lines.get(loc), source)
        for loc, msg in _cross_check(config)
    ]
    if problems:
        raise ConfigError(problems)
    return config


def load(path: Path | str) -> AgentConfig:
    """Read and validate an agent.yaml file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([ConfigProblem("", f"cannot read {path}: {exc.strerror}")]) from None
    return parse(text, source=str(path), base=path.resolve().parent)


def _cross_check(config: AgentConfig) -> Iterator[tuple[Loc, str]]:
    """Checks that span sections: names that must refer to something defined elsewhere."""
    runbooks = sorted(config.remediation.runbooks)
    seen: set[str] = set()
    for index, rule in enumerate(config.rules):
        if rule.name in seen:
            yield ("rules", index, "name"), f"duplicate rule name '{rule.name}'"
        seen.add(rule.name)
        wanted = rule.actions.runbook
        if wanted is not None and wanted not in config.remediation.runbooks:
            close = difflib.get_close_matches(wanted, runbooks, n=1, cutoff=0.6)
            hint = (
                f" (did you mean '{close[0]}'?)"
                if close
                else f"; defined: {', '.join(runbooks) or 'none'}"
            )
            yield ("rules", index, "actions", "runbook"), f"unknown runbook '{wanted}'{hint}"
    names = [p.name for p in config.collectors.processes.watch]
    for index, name in enumerate(names):
        if names.index(name) != index:
            yield ("collectors", "processes", "watch", index, "name"), f"duplicate name '{name}'"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of agent.yaml, for editors."""
    schema = AgentConfig.model_json_schema(by_alias=True, mode="validation")
    schema["title"] = "OpsWatch agent.yaml"
    return schema
