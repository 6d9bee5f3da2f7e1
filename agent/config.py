"""agent.yaml as pydantic v2 models, and its loader that reports every problem with its location.

`load(path)` returns an `AgentConfig` or raises `ConfigError` carrying one `ConfigProblem` per
problem (`rules[2].for: invalid duration '5x' (line 41)`); unknown keys come with a did-you-mean
hint. Relative paths in the file are taken relative to the file's own folder.
"""

from __future__ import annotations

import difflib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from agent.config_base import (
    Duration,
    PrioritySla,
    RuleActions,
    Secret,
    Size,
    Strict,
    _check_regex,
    _collect_secrets,
    _url_password,
    check_expr,
    check_rule_name,
    parse_duration,
    parse_size,
    read_secret_file,
)
from agent.config_load import Loc, read_yaml, validate
from agent.errors import ConfigError, ConfigProblem
from agent.event_config import EventRuleConfig
from agent.model import Level
from agent.risk_config import (
    AssetConfig,
    InhibitRuleConfig,
    RiskConfig,
    RuleRiskConfig,
    SilenceConfig,
)
from collector.snmp.config import SnmpSection
from collector.snmp.trap_config import TrapConfig

__all__ = [
    "DEFAULT_PORT",
    "AgentConfig",
    "Duration",
    "PrioritySla",
    "RuleActions",
    "Secret",
    "Size",
    "Strict",
    "json_schema",
    "load",
    "parse",
    "parse_duration",
    "parse_size",
]  # fmt: skip

DEFAULT_PORT = 10790
"""Outside 9100-9999 (fully allocated to exporters) and /etc/services."""


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
            object.__setattr__(self, "url", read_secret_file(self.url_file, "url_file"))
        return self


Role = Literal["viewer", "events", "operator", "admin"]


class ApiToken(Strict):
    """A bearer token for the HTTP API and what it may do."""

    name: str
    """Who: the author of silences and approvals made with this token."""
    role: Role
    """events: post events; operator: also silences and run decisions; admin: everything."""
    token: Secret | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ApiToken:
        if (self.token is None) == (self.token_file is None):
            raise PydanticCustomError("token", "set exactly one of token, token_file")
        if self.token_file is not None:
            object.__setattr__(self, "token", read_secret_file(self.token_file, "token_file"))
        if len(self.token.get_secret_value() if self.token else "") < 16:
            raise PydanticCustomError("token", "tokens must be at least 16 characters")
        return self


class ApiSection(Strict):
    tokens: list[ApiToken] = []
    """Without tokens every mutating endpoint answers 401; reads need none."""
    max_events_per_request: int = Field(default=100, gt=0, le=10_000)


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
    risk: RuleRiskConfig = RuleRiskConfig()

    _name = field_validator("name")(check_rule_name)
    _expr = field_validator("expr")(check_expr)

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


class RemediationSection(Strict):
    runbooks_dir: Path | None = None
    """Default: the runbooks shipped with OpsWatch."""
    runbooks: dict[str, RunbookConfig] = {}
    approval_ttl: Duration = 3600.0
    verify_within: Duration = 600.0
    """A succeeded run is `verified` if its alert clears within this time, else `ineffective`."""


class EvaluationSection(Strict):
    interval: Duration = 15.0
    retention: Duration = 3600.0
    """How much history the agent keeps in memory for window functions."""


class AgentConfig(Strict):
    agent: AgentSection = Field(default_factory=AgentSection)
    database: DatabaseConfig = DatabaseConfig()
    api: ApiSection = ApiSection()
    collectors: CollectorsSection = CollectorsSection()
    evaluation: EvaluationSection = EvaluationSection()
    rules: list[RuleConfig] = []
    event_rules: list[EventRuleConfig] = []
    """Alerts fired by SNMP traps or webhook events (docs/rules.md, "Event rules")."""
    remediation: RemediationSection = RemediationSection()
    risk: RiskConfig = Field(default_factory=RiskConfig)
    assets: list[AssetConfig] = []
    """Criticality of hosts, devices and interfaces, matched by labels."""
    silences: list[SilenceConfig] = []
    inhibit_rules: list[InhibitRuleConfig] = []
    snmp: SnmpSection = SnmpSection()
    """Network devices polled over SNMP v1/v2c/v3 (docs/snmp.md)."""
    traps: TrapConfig = TrapConfig()
    """The SNMP trap receiver (docs/traps.md); off unless enabled."""

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


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in the file are relative to the file, not the working directory."""
    agent = data.get("agent")
    if isinstance(agent, dict) and isinstance(agent.get("state_dir"), str):
        agent["state_dir"] = str(base / agent["state_dir"])
    for section, key in (("remediation", "runbooks_dir"), ("snmp", "profiles_dir")):
        found = data.get(section)
        if isinstance(found, dict) and isinstance(found.get(key), str):
            found[key] = str(base / found[key])


def parse(text: str, source: str = "agent.yaml", base: Path | None = None) -> AgentConfig:
    """Validate YAML text; raise ConfigError listing every problem with its path and line."""
    data, lines = read_yaml(text, source)
    if base is not None:
        _resolve_paths(data, base)
    return validate(AgentConfig, data, lines, source, _cross_check)


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
    seen: set[str] = set()
    every = [("rules", i, r.name, r.actions) for i, r in enumerate(config.rules)]
    every += [("event_rules", i, r.name, r.actions) for i, r in enumerate(config.event_rules)]
    for section, index, name, actions in every:
        if name in seen:
            yield (section, index, "name"), f"duplicate rule name '{name}'"
        seen.add(name)
        problem = _unknown_runbook(actions.runbook, sorted(config.remediation.runbooks))
        if problem:
            yield (section, index, "actions", "runbook"), problem
    names = [p.name for p in config.collectors.processes.watch]
    for index, name in enumerate(names):
        if names.index(name) != index:
            yield ("collectors", "processes", "watch", index, "name"), f"duplicate name '{name}'"


def _unknown_runbook(wanted: str | None, runbooks: list[str]) -> str | None:
    if wanted is None or wanted in runbooks:
        return None
    close = difflib.get_close_matches(wanted, runbooks, n=1, cutoff=0.6)
    hint = (
        f" (did you mean '{close[0]}'?)" if close else f"; defined: {', '.join(runbooks) or 'none'}"
    )
    return f"unknown runbook '{wanted}'{hint}"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of agent.yaml, for editors."""
    schema = AgentConfig.model_json_schema(by_alias=True, mode="validation")
    schema["title"] = "OpsWatch agent.yaml"
    return schema
