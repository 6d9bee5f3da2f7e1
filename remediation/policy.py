"""What remediation may do for one alert: the rule's actions bounded by the risk matrix's policy.

The rule says what could fix the fault (`runbook`, `approval: auto|required`, `ticket`); the
risk matrix says how much may happen without a person (docs/risk.md). The stricter one wins:

| policy          | run                                   | ticket                  |
|-----------------|---------------------------------------|-------------------------|
| `auto`          | as the rule says                      | as the rule says        |
| `approval`      | waits for one person                  | as the rule says        |
| `two_approvers` | waits for two different people        | as the rule says        |
| `ticket_only`   | none                                  | always                  |

A flapping alert never runs unattended: `auto` becomes one approval. The agent rates every alert
each cycle, so each has a policy; one without (built by hand, e.g. in a test) gets the rule's.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config_base import RuleActions
from agent.model import Alert
from agent.risk_config import Policy


@dataclass(frozen=True, slots=True)
class Decision:
    run: bool
    """Create a run at all (the rule names a runbook and the policy allows one)."""
    approvals: int
    """People who must approve before it starts: 0 (auto), 1 or 2."""
    ticket: bool
    why: str
    """Why it is stricter than the rule asked, for the log and the ticket; empty if not."""


def decide(alert: Alert, actions: RuleActions) -> Decision:
    """The stricter of the rule's actions and the alert's policy."""
    try:
        policy = Policy(alert.policy) if alert.policy else Policy.AUTO
    except ValueError:  # a policy this version does not know: the strictest that still acts
        policy = Policy.TWO_APPROVERS
    wants_run = actions.runbook is not None
    if policy is Policy.TICKET_ONLY:
        why = f"policy ticket_only (risk {alert.risk or 'unrated'}): no runbook runs"
        return Decision(False, 0, True, why if wants_run else "")
    asked = 0 if actions.approval == "auto" else 1
    needed = {Policy.AUTO: asked, Policy.APPROVAL: 1, Policy.TWO_APPROVERS: 2}[policy]
    why = ""
    if needed > asked:
        why = f"policy {policy.value} (risk {alert.risk or 'unrated'})"
    if needed == 0 and alert.flapping:
        needed, why = 1, "the alert is flapping: a person decides"
    return Decision(wants_run, needed, actions.ticket, why if wants_run else "")
