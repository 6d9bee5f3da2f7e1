"""The local ticket desk: work orders kept in the state store.

One open ticket per alert fingerprint. A firing alert of a rule with `actions.ticket` opens it;
a later activation while it is still open counts an occurrence; the alert resolving resolves it
with the outcome of the remediation run. A firing after resolution opens a new ticket that names
the previous one. Alert text (labels, annotations) is data: control characters are escaped so a
label value cannot forge lines of the ticket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from agent.config import PrioritySla, RuleActions
from agent.errors import ConflictError
from agent.model import Alert, AlertState, Priority, RemediationRun, Ticket, TicketState
from agent.rules import format_value
from agent.store import NewTicket, Store
from agent.store_runs import iso
from remediation import policy
from remediation.runbook import summary_of

log = logging.getLogger(__name__)

TITLE_LIMIT = 200


def escape(text: str) -> str:
    """Untrusted text on one line: control characters (newlines too) shown as escapes."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _number(value: float | None) -> str:
    return "-" if value is None else format_value(value)


def describe_run(run: RemediationRun) -> str:
    """One line about a run for ticket history and resolutions."""
    text = f"run {run.id} ({run.runbook}) {run.state.value}"
    if run.approved_by:
        text += f", approved by {escape(run.approved_by)}"
    if run.rc is not None:
        text += f", rc={run.rc}"
    if run.output:
        text += f": {escape(summary_of(run.output))}"
    elif run.reason:
        text += f": {escape(run.reason)}"
    return text


class LocalDesk:
    """Opens, updates and resolves tickets in the store from alert and run events."""

    def __init__(
        self, store: Store, priorities: Mapping[Priority, PrioritySla], agent_name: str
    ) -> None:
        self.store = store
        self.priorities = priorities
        self.agent = agent_name

    def on_alert(
        self, alert: Alert, rule_actions: RuleActions, run: RemediationRun | None, now: float
    ) -> Ticket | None:
        """Open, count or resolve the ticket of this alert; the ticket touched, if any.

        Whether it has one is the rule's `ticket` bounded by the alert's policy: `ticket_only`
        opens one even when the rule does not ask (remediation.policy).
        """
        if not policy.decide(alert, rule_actions).ticket:
            return None
        if alert.state is AlertState.FIRING:
            ticket = self._firing(alert, now, link_runs=run is None)
            return self.on_run_update(run, now) if run is not None else ticket
        if alert.state is AlertState.RESOLVED:
            return self._resolved(alert, run, now)
        return None

    def on_run_update(self, run: RemediationRun, now: float) -> Ticket | None:
        """Append a run's new state to the latest ticket of its alert."""
        ticket = self.store.ticket_for_fingerprint(run.fingerprint, open_only=False)
        if ticket is None:
            return None
        return self.store.add_ticket_event(ticket.id, "run", describe_run(run), now)

    def _firing(self, alert: Alert, now: float, link_runs: bool) -> Ticket:
        ticket = self.store.ticket_for_fingerprint(alert.fingerprint)
        if ticket is None:
            opened, ours = self._open(alert, now)
            # A run of this firing may already exist: created in a cycle whose ticket write
            # failed (the database went away in between). The ticket still names it, unless
            # another writer opened the ticket (and named the run) first.
            latest = self.store.list_runs(limit=1, fingerprint=alert.fingerprint)
            if ours and link_runs and latest and latest[0].created_at >= alert.starts_at:
                return self.on_run_update(latest[0], now) or opened
            return opened
        text = f"fired again at {iso(alert.starts_at)} (value {_number(alert.value)})"
        counted = self.store.add_occurrence(ticket.id, alert.starts_at, text, now)
        last_level = self.store.ticket_level(ticket.id)
        if last_level is not None and last_level is not alert.level:
            text = f"level {last_level.value} -> {alert.level.value} (value {_number(alert.value)})"
            return self.store.add_ticket_event(ticket.id, "level", text, now, level=alert.level)
        return counted or ticket

    def _open(self, alert: Alert, now: float) -> tuple[Ticket, bool]:
        """The alert's new ticket, and False if another writer had just opened it."""
        previous = self.store.ticket_for_fingerprint(alert.fingerprint, open_only=False)
        priority = alert.priority  # set by the risk matrix
        sla = self.priorities[priority]
        host = alert.label("host", self.agent)
        new = NewTicket(
            agent=self.agent, fingerprint=alert.fingerprint, rule=alert.rule,
            title=self.title(alert, priority, host),
            body=self.body(alert, priority, host, previous),
            priority=priority, level=alert.level, host=host, activation=alert.starts_at,
            response_due=now + sla.response, resolution_due=now + sla.resolution,
            previous_id=previous.id if previous else None,
        )  # fmt: skip
        try:
            ticket = self.store.open_ticket(new, now, f"opened: {new.title}")
        except ConflictError:  # another writer opened it first: use theirs
            found = self.store.ticket_for_fingerprint(alert.fingerprint)
            if found is None:
                raise
            return found, False
        log.info("ticket opened", extra={"ticket": ticket.id, "priority": priority.value})
        return ticket, True

    def _resolved(self, alert: Alert, run: RemediationRun | None, now: float) -> Ticket | None:
        ticket = self.store.ticket_for_fingerprint(alert.fingerprint)
        if ticket is None:
            return None
        run = run or self._latest_run(alert.fingerprint, ticket.opened_at)
        cleared = f"Alert cleared at {iso(alert.ends_at or now)} (value {_number(alert.value)})."
        outcome = f" Remediation: {describe_run(run)}." if run else " No remediation run."
        try:
            resolved = self.store.resolve_ticket(ticket.id, cleared + outcome, now)
        except ConflictError:
            return None  # resolved by another writer meanwhile
        log.info("ticket resolved", extra={"ticket": ticket.id})
        return resolved

    def reconcile(self, active: set[str], now: float) -> list[Ticket]:
        """Resolve open tickets whose alert is no longer active: a clear missed while down."""
        resolved = []
        for ticket in self.store.list_tickets(TicketState.OPEN, limit=1000, agent=self.agent):
            if ticket.fingerprint in active:
                continue
            run = self._latest_run(ticket.fingerprint, ticket.opened_at)
            outcome = f" Remediation: {describe_run(run)}." if run else " No remediation run."
            try:
                resolved.append(
                    self.store.resolve_ticket(
                        ticket.id, f"Alert no longer active at {iso(now)}.{outcome}", now
                    )
                )
            except ConflictError:
                continue  # resolved by another writer meanwhile
        return resolved

    def _latest_run(self, fingerprint: str, since: float) -> RemediationRun | None:
        runs = self.store.list_runs(limit=1, fingerprint=fingerprint)
        return runs[0] if runs and runs[0].created_at >= since else None

    @staticmethod
    def title(alert: Alert, priority: Priority, host: str) -> str:
        """`[P1 urgent] FilesystemAlmostFull on web1: / 96.2% > 95`."""
        summary = dict(alert.annotations).get("summary")
        if not summary:
            summary = f"value {_number(alert.value)} (threshold {_number(alert.threshold)})"
        title = f"[{priority.value} {priority.urgency}] {alert.rule} on {host}: {summary}"
        title = escape(title)
        return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"

    def body(self, alert: Alert, priority: Priority, host: str, previous: Ticket | None) -> str:
        """The ticket text: what fired, where, how far over, with every label and annotation."""
        lines = [
            f"Alert {alert.rule} is firing on {escape(host)}.",
            "",
            f"Host:        {escape(host)}",
            f"Rule:        {alert.rule}",
            f"Level:       {alert.level.value}",
            f"Priority:    {priority.value} {priority.urgency}",
            f"Risk:        {alert.risk or '-'} (likelihood {alert.likelihood or '-'}, "
            f"impact {alert.impact or '-'}; policy {alert.policy or '-'})",
            f"Value:       {_number(alert.value)}",
            f"Threshold:   {_number(alert.threshold)}",
            f"Started at:  {iso(alert.starts_at)}",
            f"Fingerprint: {alert.fingerprint}",
            "",
            "Labels:", *_pairs(alert.labels),
            "Annotations:", *_pairs(alert.annotations),
        ]  # fmt: skip
        if previous is not None:
            lines += ["", f"Previous ticket: #{previous.id} ({previous.state.value}, "
                          f"opened {iso(previous.opened_at)})"]  # fmt: skip
        return "\n".join(lines)


def _pairs(pairs: Iterable[tuple[str, str]]) -> list[str]:
    found = [f"  {escape(k)}: {escape(v)}" for k, v in pairs]
    return found or ["  (none)"]
