"""agent.yaml sections for risk: the matrix, assets, silences, inhibit rules and rule additions.

Pydantic v2 models on `agent.config.Strict` (unknown keys are errors). They are wired into
`AgentConfig` as `risk`, `assets`, `silences` and `inhibit_rules`, and into `RuleConfig` as
`risk` (a `RuleRiskConfig`). Matchers are written as Alertmanager writes them: `name="value"`,
`name!="value"`, `name=~"regex"`, `name!~"regex"`.
"""

from __future__ import annotations

import enum
import hashlib
import re
import zoneinfo
from collections.abc import Callable, Mapping
from datetime import datetime, time
from typing import Annotated, Any, Literal, cast

from pydantic import Field, PlainSerializer, PlainValidator, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from agent.config_base import Duration, PrioritySla, Strict
from agent.model import Level, Priority
from agent.series import Matcher, MatchOp


class Likelihood(enum.StrEnum):
    """The five-level likelihood scale of ISO 31000-style risk registers."""

    RARE = "rare"
    UNLIKELY = "unlikely"
    POSSIBLE = "possible"
    LIKELY = "likely"
    ALMOST_CERTAIN = "almost_certain"

    @property
    def rank(self) -> int:
        return list(Likelihood).index(self) + 1


class Impact(enum.StrEnum):
    """Asset criticality: how bad a problem on the asset is."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Impact).index(self) + 1


class RiskLevel(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Policy(enum.StrEnum):
    """What remediation may do on its own (remediation.policy bounds the rule's actions by it)."""

    AUTO = "auto"
    APPROVAL = "approval"
    TWO_APPROVERS = "two_approvers"
    TICKET_ONLY = "ticket_only"


# ---------------------------------------------------------------------------------------------
# Matchers

_MATCHER = re.compile(
    r"""^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^"]*?)\s*$"""
)


def parse_matcher(value: object) -> Matcher:
    """`host=~"web.*"` → a `Matcher` (the value may be unquoted if it has no spaces)."""
    if isinstance(value, Matcher):
        return value
    match = _MATCHER.match(str(value))
    if not match:
        raise PydanticCustomError(
            "matcher", "invalid matcher '{v}' (expected name=\"value\", !=, =~ or !~)", {"v": value}
        )
    name, op, raw = match.groups()
    text = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
    try:
        return Matcher.make(name, cast(MatchOp, op), text)
    except re.error as exc:
        raise PydanticCustomError(
            "matcher", "invalid regular expression: {e}", {"e": str(exc)}
        ) from None


def format_matcher(matcher: Matcher) -> str:
    """The Alertmanager spelling of a matcher."""
    escaped = matcher.value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{matcher.name}{matcher.op}"{escaped}"'


MatcherField = Annotated[
    Matcher,
    PlainValidator(parse_matcher),
    PlainSerializer(format_matcher),
    WithJsonSchema({"type": "string", "pattern": r"^\s*[a-zA-Z_]\w*\s*(=~|!~|!=|=)"}),
]


def _zone(value: object) -> str:
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError("time_zone", "unknown time zone '{v}'", {"v": value}) from None
    return str(value)


TimeZone = Annotated[str, PlainValidator(_zone), WithJsonSchema({"type": "string"})]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# ---------------------------------------------------------------------------------------------
# risk:


def _default_matrix() -> dict[Likelihood, dict[Impact, RiskLevel]]:
    rows = {
        # impact:                low       medium    high        critical
        Likelihood.RARE:           ("low",    "low",      "low",      "medium"),
        Likelihood.UNLIKELY:       ("low",    "low",      "medium",   "high"),
        Likelihood.POSSIBLE:       ("low",    "medium",   "high",     "high"),
        Likelihood.LIKELY:         ("medium", "high",     "high",     "critical"),
        Likelihood.ALMOST_CERTAIN: ("medium", "critical", "critical", "critical"),
    }  # fmt: skip
    return {lk: dict(zip(Impact, map(RiskLevel, row), strict=True)) for lk, row in rows.items()}


class Response(Strict):
    """What a risk level (or one matrix cell) asks for."""

    priority: Priority
    policy: Policy


def _default_responses() -> dict[RiskLevel, Response]:
    return {
        RiskLevel.LOW: Response(priority=Priority.P3, policy=Policy.AUTO),
        RiskLevel.MEDIUM: Response(priority=Priority.P3, policy=Policy.APPROVAL),
        RiskLevel.HIGH: Response(priority=Priority.P2, policy=Policy.APPROVAL),
        RiskLevel.CRITICAL: Response(priority=Priority.P1, policy=Policy.APPROVAL),
    }


def _default_priorities() -> dict[Priority, PrioritySla]:
    return {
        Priority.P1: PrioritySla(response=2 * 3600, resolution=8 * 3600),
        Priority.P2: PrioritySla(response=4 * 3600, resolution=24 * 3600),
        Priority.P3: PrioritySla(response=8 * 3600, resolution=72 * 3600),
    }


def _default_likelihood() -> dict[Level, Likelihood]:
    return {
        Level.INFO: Likelihood.POSSIBLE,
        Level.WARNING: Likelihood.LIKELY,
        Level.CRITICAL: Likelihood.ALMOST_CERTAIN,
    }


class CellOverride(Strict):
    """One matrix cell answered differently from its risk level's default response."""

    likelihood: Likelihood
    impact: Impact
    priority: Priority | None = None
    policy: Policy | None = None


class PredictionLikelihood(Strict):
    """How a predicted warning's likelihood follows from how soon and how sure it is."""

    likely_within: float = Field(default=0.25, gt=0, le=1)
    """Time to threshold at most this fraction of the horizon: likely."""
    possible_within: float = Field(default=0.5, gt=0, le=1)
    """... at most this fraction: possible; within the horizon: unlikely; beyond it: rare."""
    confident_r2: float = Field(default=0.9, ge=0, le=1)
    """A fit at least this good with `min_points` points keeps that likelihood."""
    weak_r2: float = Field(default=0.5, ge=0, le=1)
    """A fit below this (or with too few points) lowers it two steps, else one step."""
    min_points: int = Field(default=10, ge=2)

    @model_validator(mode="after")
    def _ordered(self) -> PredictionLikelihood:
        if self.likely_within > self.possible_within or self.weak_r2 > self.confident_r2:
            raise PydanticCustomError(
                "order", "need likely_within <= possible_within and weak_r2 <= confident_r2"
            )
        return self


class RiskConfig(Strict):
    """The `risk:` section: likelihood sources, the matrix and what each risk level asks for."""

    likelihood: dict[Level, Likelihood] = Field(default_factory=_default_likelihood)
    """Likelihood of an alert raised by a threshold that is actually crossed."""
    prediction: PredictionLikelihood = PredictionLikelihood()
    default_impact: Impact = Impact.MEDIUM
    """Impact when neither an asset nor the rule says."""
    matrix: dict[Likelihood, dict[Impact, RiskLevel]] = Field(default_factory=_default_matrix)
    responses: dict[RiskLevel, Response] = Field(default_factory=_default_responses)
    overrides: list[CellOverride] = Field(default_factory=list)
    priorities: dict[Priority, PrioritySla] = Field(default_factory=_default_priorities)
    """Response and resolution times: P1 urgent 2 h, P2 important 4 h, P3 general 8 h."""

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        """A table in agent.yaml changes the cells it names; the others keep their defaults."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for key, default in _TABLES.items():
            given = data.get(key)
            if isinstance(given, dict):
                base = _plain(default())
                merged[key] = {k: _over(base.get(str(k)), v) for k, v in given.items()}
                merged[key] = {**base, **merged[key]}
        return merged

    @model_validator(mode="after")
    def _complete(self) -> RiskConfig:
        missing = [f"{lk.value}/{im.value}" for lk in Likelihood for im in Impact
                   if im not in self.matrix.get(lk, {})]  # fmt: skip
        missing += [f"responses.{r.value}" for r in RiskLevel if r not in self.responses]
        missing += [f"priorities.{p.value}" for p in Priority if p not in self.priorities]
        missing += [f"likelihood.{lv.value}" for lv in Level if lv not in self.likelihood]
        if missing:
            raise PydanticCustomError("matrix", "incomplete: {m}", {"m": ", ".join(missing)})
        return self


_TABLES: dict[str, Callable[[], Mapping[Any, Any]]] = {
    "likelihood": _default_likelihood,
    "matrix": _default_matrix,
    "responses": _default_responses,
    "priorities": _default_priorities,
}


def _plain(value: Any) -> Any:
    """Defaults as agent.yaml would spell them (string keys, dumped models)."""
    if isinstance(value, Mapping):
        return {str(getattr(k, "value", k)): _plain(v) for k, v in value.items()}
    if isinstance(value, Strict):
        return value.model_dump()
    return getattr(value, "value", value)


def _over(base: Any, given: Any) -> Any:
    """A given row (a matrix row, one priority's times) merges into its default row."""
    return {**base, **given} if isinstance(base, dict) and isinstance(given, dict) else given


# ---------------------------------------------------------------------------------------------
# assets:, silences:, inhibit_rules:


class AssetConfig(Strict):
    """Alerts whose labels equal every `match` pair concern an asset of this criticality."""

    match: dict[str, str] = Field(min_length=1)
    criticality: Impact


class RecurringWindow(Strict):
    """A weekly maintenance window in local wall-clock time; `end <= start` runs past midnight."""

    weekdays: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS))
    """The days the window starts on."""
    start: time
    end: time
    time_zone: TimeZone = "UTC"

    @model_validator(mode="after")
    def _naive_times(self) -> RecurringWindow:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise PydanticCustomError("time", "give times of day without offset; set time_zone")
        return self


class SilenceConfig(Strict):
    """Mute matching alerts: once (`starts_at`..`ends_at`) or in recurring windows."""

    id: str = ""
    """Stable name for logs and the API; default `silence-` and a hash of the rest."""
    matchers: list[MatcherField] = Field(min_length=1)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    recurring: list[RecurringWindow] = Field(default_factory=list)
    """When set, the silence is active only inside these windows (and starts_at..ends_at)."""
    author: str
    comment: str

    @model_validator(mode="after")
    def _when(self) -> SilenceConfig:
        for moment in (self.starts_at, self.ends_at):
            if moment is not None and moment.tzinfo is None:
                raise PydanticCustomError("time", "give starts_at/ends_at with a UTC offset")
        if not self.recurring and self.ends_at is None:
            raise PydanticCustomError("when", "set ends_at, or recurring windows")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise PydanticCustomError("when", "ends_at must be after starts_at")
        if not self.id:
            digest = hashlib.sha256(self.model_dump_json(exclude={"id"}).encode()).hexdigest()
            object.__setattr__(self, "id", f"silence-{digest[:12]}")
        return self


class InhibitRuleConfig(Strict):
    """Alertmanager's inhibit rule: a firing source hides targets sharing the `equal` labels."""

    source_matchers: list[MatcherField] = Field(min_length=1)
    target_matchers: list[MatcherField] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# rule additions


class FlapConfig(Strict):
    """Nagios-style flap detection over the last `window` evaluations."""

    enabled: bool = True
    window: int = Field(default=21, ge=3, le=1000)
    high: float = Field(default=50.0, gt=0, le=100)
    """Start flapping at this weighted percent of state changes or more."""
    low: float = Field(default=25.0, ge=0, le=100)
    """Stop flapping at this percent or less."""

    @model_validator(mode="after")
    def _hysteresis(self) -> FlapConfig:
        if self.low >= self.high:
            raise PydanticCustomError("flap", "low must be below high")
        return self


class RuleRiskConfig(Strict):
    """What a rule adds for risk: its own impact, flap settings and prediction horizon."""

    impact: Impact | None = None
    flap: FlapConfig = FlapConfig()
    horizon: Duration | None = None
    """For a predicted warning (a `time_to_threshold` rule): how far ahead it looks. Default:
    the rule's lowest threshold."""
