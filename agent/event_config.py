"""agent.yaml models of event rules: alerts fired by traps or webhooks, cleared by events,
by a polled value, or by time."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from agent.config_base import Duration, RuleActions, Strict, check_expr, check_rule_name
from agent.model import Level
from agent.risk_config import MatcherField, RuleRiskConfig


class EventMatch(Strict):
    """Which events: by name and by matchers on their labels (Alertmanager syntax)."""

    name: str
    """The event's name, e.g. `linkDown`, `coldStart`, `authenticationFailure`."""
    match: list[MatcherField] = Field(default_factory=list)


class EventRuleConfig(Strict):
    """Fire on an event; clear on a later event, a polled value, or after a while."""

    name: str
    event: EventMatch
    level: Level = Level.WARNING
    identify: list[str] = Field(default_factory=list)
    """Labels that say which thing the event is about (default: all of the event's labels)."""
    clear_event: EventMatch | None = None
    """A later event with the same identifying labels clears the alert (e.g. `linkUp`)."""
    clear_expr: str | None = None
    """Or a polled value: any element of this expression with the alert's identifying labels
    clears it (e.g. `ifOperStatus == 1`)."""
    resolve_after: Duration | None = None
    """Or time: the alert resolves this long after the last matching event."""
    max_alerts: int = Field(default=1000, ge=1)
    """At most this many alerts of the rule fire at once: a storm of events with ever new
    labels (a flood of traps, a misbehaving webhook) cannot open unbounded alerts, tickets
    and runs. Events past it are counted (`opswatch_event_alerts_capped_total`)."""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    actions: RuleActions = RuleActions()
    risk: RuleRiskConfig = RuleRiskConfig()

    _name = field_validator("name")(check_rule_name)

    @field_validator("clear_expr")
    @classmethod
    def _expr(cls, value: str | None) -> str | None:
        return None if value is None else check_expr(value)

    @model_validator(mode="after")
    def _clears(self) -> EventRuleConfig:
        if self.clear_event is None and self.clear_expr is None and self.resolve_after is None:
            raise PydanticCustomError(
                "clear", "say how the alert clears: clear_event, clear_expr or resolve_after"
            )
        if self.clear_expr is not None and not self.identify:
            raise PydanticCustomError(
                "identify", "clear_expr needs identify: the labels a polled element must share"
            )
        return self
