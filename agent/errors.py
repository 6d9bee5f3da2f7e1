"""The one exception tree of OpsWatch. Adapters translate library errors at the boundary.

    OpsWatchError
    ├── ConfigError            agent.yaml is wrong (carries every problem found)
    ├── ExpressionError        an indicator expression does not parse or type-check
    ├── CollectorError         a collector could not read its source
    ├── StoreError             the state store refused or lost a write
    │   ├── NotFoundError      no run, ticket or silence with that id
    │   └── ConflictError      a state transition lost a race (approved twice, claimed twice)
    ├── RemediationError       a runbook or device command could not be started or failed
    └── TicketError            a service desk refused or could not be reached
"""

from __future__ import annotations

from dataclasses import dataclass


class OpsWatchError(Exception):
    """Root of every error OpsWatch raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in agent.yaml: where it is and what is wrong."""

    path: str
    message: str
    line: int | None = None
    source: str = ""

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path}: {self.message}{where}" if self.path else f"{self.message}{where}"


class ConfigError(OpsWatchError):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ExpressionError(OpsWatchError):
    """An indicator expression is malformed; `position` is the character offset."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{message}{where}")


class CollectorError(OpsWatchError):
    pass


class StoreError(OpsWatchError):
    pass


class ConflictError(StoreError):
    pass


class NotFoundError(StoreError):
    pass


class RemediationError(OpsWatchError):
    pass


class TicketError(OpsWatchError):
    pass
