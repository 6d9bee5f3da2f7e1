"""Inhibition: a firing source alert hides the target alerts it explains (pure).

Alertmanager's rule: an alert matching a rule's `target_matchers` is inhibited when some other
*firing* alert matches its `source_matchers` and both have the same value (a missing label is "")
for every label in `equal`. A device that is down thus hides its interface alerts, and a host
that is down hides its service alerts. An alert never inhibits itself, but one that matches both
sides can be hidden by another. Silenced and inhibited sources still inhibit, as in Alertmanager.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from agent.model import Alert, AlertState
from agent.risk_config import InhibitRuleConfig
from agent.silences import match_labels, matches

_Key = tuple[str, ...]


def inhibited_by(
    alerts: Iterable[Alert], inhibit_rules: Sequence[InhibitRuleConfig]
) -> dict[str, str]:
    """Map each inhibited alert's fingerprint to the fingerprint of an alert that hides it."""
    seen = [(alert, match_labels(alert)) for alert in alerts]
    found: dict[str, str] = {}
    for rule in inhibit_rules:
        sources = _sources(rule, seen)
        if not sources:
            continue
        for alert, labels in seen:
            if alert.fingerprint in found or not matches(rule.target_matchers, labels):
                continue
            source = _other(sources.get(_key(rule, labels), ()), alert.fingerprint)
            if source is not None:
                found[alert.fingerprint] = source
    return found


def _sources(
    rule: InhibitRuleConfig, seen: list[tuple[Alert, dict[str, str]]]
) -> dict[_Key, list[str]]:
    """Firing source fingerprints by their `equal` values, in a stable (sorted) order."""
    out: dict[_Key, list[str]] = {}
    for alert, labels in seen:
        if alert.state is AlertState.FIRING and matches(rule.source_matchers, labels):
            out.setdefault(_key(rule, labels), []).append(alert.fingerprint)
    for fingerprints in out.values():
        fingerprints.sort()
    return out


def _key(rule: InhibitRuleConfig, labels: dict[str, str]) -> _Key:
    return tuple(labels.get(name, "") for name in rule.equal)


def _other(sources: Sequence[str], target: str) -> str | None:
    """The first source that is not the target itself (at most two need looking at)."""
    return next((fp for fp in sources[:2] if fp != target), None)
