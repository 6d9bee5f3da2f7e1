"""Flap detection as Nagios does it: weighted percent of state changes over recent evaluations.

Each alert (by fingerprint) keeps the states of its last `window` evaluations (0 = fine, else
the level's rank, so warning <-> critical counts as a change too). Of the `window - 1` possible
changes, each that happened is weighted from 0.8 (oldest) to 1.2 (newest), so recent changes
count more; the sum over `window - 1` is the percent state change. An alert starts flapping at
`high` percent or more and stops at `low` or less; in between it keeps what it was. Like
`AlertStatus`, the `FlapState` is carried by the caller between cycles (pure, no clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from agent.model import Alert, AlertState, Level
from agent.risk_config import FlapConfig
from agent.rules import CompiledRule

DEFAULT = FlapConfig()
_LOW_WEIGHT, _HIGH_WEIGHT = 0.8, 1.2


@dataclass(frozen=True, slots=True)
class FlapState:
    """What flap detection remembers about one alert between evaluations."""

    rule: str
    history: tuple[int, ...] = ()
    """Oldest first; 0 = fine, otherwise `Level.rank`."""
    percent: float = 0.0
    flapping: bool = False


def percent_state_change(history: Sequence[int], window: int) -> float:
    """Nagios' weighted percent state change of the last `window` states (0 to 100)."""
    if not history:
        return 0.0
    # a short history is padded with its first state, as Nagios fills its array at start-up
    recent = list(history[-window:])
    states = [recent[0]] * (window - len(recent)) + recent
    step = (_HIGH_WEIGHT - _LOW_WEIGHT) / (window - 2)
    changed = (_LOW_WEIGHT + i * step for i, (a, b) in enumerate(pairwise(states)) if a != b)
    return sum(changed) * 100.0 / (window - 1)


def observe(
    previous: FlapState | None, rule: str, level: Level | None, settings: FlapConfig = DEFAULT
) -> FlapState:
    """Record one evaluation's state (`level`, None when fine) and decide whether it flaps."""
    before = previous or FlapState(rule)
    history = (*before.history, level.rank if level is not None else 0)[-settings.window :]
    percent = percent_state_change(history, settings.window)
    flapping = before.flapping
    if percent >= settings.high:
        flapping = True
    elif percent <= settings.low:
        flapping = False
    return FlapState(rule, history, percent, flapping and settings.enabled)


def track(
    previous: Mapping[str, FlapState],
    observed: Mapping[str, tuple[str, Level | None]],
    settings: Mapping[str, FlapConfig],
) -> dict[str, FlapState]:
    """Advance every alert one evaluation; one not observed this cycle counts as fine.

    `observed` maps fingerprint to (rule, level); `settings` maps rule names to their flap
    settings (default: 21 evaluations, 50 % / 25 %). An alert whose whole window is fine and
    which is not flapping is forgotten, so the state stays as small as the set of live alerts.
    """
    out: dict[str, FlapState] = {}
    for fp in previous.keys() | observed.keys():
        before = previous.get(fp)
        rule, level = observed.get(fp) or (before.rule if before else "", None)
        if before is None and level is None:
            continue
        state = observe(before, rule, level, settings.get(rule, DEFAULT))
        if state.flapping or any(state.history):
            out[fp] = state
    return out


def observations(
    alerts: Iterable[Alert], rules: Mapping[str, CompiledRule]
) -> dict[str, tuple[str, Level | None]]:
    """Each alert's raw state this cycle: the level its value crosses, before `for`/hysteresis."""
    out: dict[str, tuple[str, Level | None]] = {}
    for alert in alerts:
        rule = rules.get(alert.rule)
        crossed = rule.level_for(alert.value) if rule is not None else None
        live = alert.state is not AlertState.RESOLVED and crossed is not None
        out[alert.fingerprint] = (alert.rule, crossed[0] if live and crossed else None)
    return out
