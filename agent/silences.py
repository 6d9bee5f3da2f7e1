"""Silences and maintenance windows: which alerts are muted at an instant (pure, no clock).

A silence matches an alert when every matcher holds for the alert's labels (Alertmanager's rule;
a missing label reads as ""). Matchers also see `severity`, the alert's level, unless the alert
has a `severity` label of its own. A silenced alert is still evaluated and exported; the caller
only starts no action and no ticket for it.

Recurring windows are wall-clock times in their time zone, so a 01:00-04:00 window covers 2 real
hours on a spring-forward day and 4 on a fall-back day, and a window inside the skipped hour
does not happen that day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.model import Alert
from agent.risk_config import WEEKDAYS, RecurringWindow, SilenceConfig
from agent.series import Matcher


def matches(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher holds for `labels` (a missing label reads as "")."""
    return all(m.matches(labels.get(m.name, "")) for m in matchers)


def match_labels(alert: Alert) -> dict[str, str]:
    """The labels matchers see: the alert's own, plus `severity` from its level if missing."""
    labels = dict(alert.labels)
    labels.setdefault("severity", alert.level.value)
    return labels


def active_silences(silences: Sequence[SilenceConfig], now: float) -> list[SilenceConfig]:
    """The silences in force at `now` (Unix seconds), in their given order."""
    return [s for s in silences if is_active(s, now)]


def silenced_by(alert: Alert, silences: Sequence[SilenceConfig], now: float) -> str | None:
    """The id of the first silence in force at `now` that matches `alert`, or None."""
    labels = match_labels(alert)
    for silence in silences:
        if matches(silence.matchers, labels) and is_active(silence, now):
            return silence.id
    return None


def is_active(silence: SilenceConfig, now: float) -> bool:
    """True when `now` is inside the silence's period and, if recurring, one of its windows."""
    if silence.starts_at is not None and now < silence.starts_at.timestamp():
        return False
    if silence.ends_at is not None and now >= silence.ends_at.timestamp():
        return False
    return not silence.recurring or any(in_window(w, now) for w in silence.recurring)


def in_window(window: RecurringWindow, now: float) -> bool:
    """True when local wall-clock time at `now` falls inside the weekly window."""
    local = datetime.fromtimestamp(now, ZoneInfo(window.time_zone))
    clock, today = local.time(), WEEKDAYS[local.weekday()]
    if window.start < window.end:
        return today in window.weekdays and window.start <= clock < window.end
    # runs past midnight (or all day when start == end): tonight's part, or last night's tail
    yesterday = WEEKDAYS[local.weekday() - 1]
    tonight = today in window.weekdays and clock >= window.start
    return tonight or (yesterday in window.weekdays and clock < window.end)
