"""The local ticket desk: what a service-desk user reads in the ticket, and when it changes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from agent.config import RuleActions
from agent.errors import StoreError
from agent.model import Alert, AlertState, Level, Priority, RemediationRun, RunState, TicketState
from agent.risk_config import RiskConfig
from agent.store import NewRun, Store
from remediation.tickets.local import LocalDesk

NOW = 1_700_000_000.0  # the make_alert fixture's clock
AlertFactory = Callable[..., Alert]
TICKET = RuleActions(ticket=True)


@pytest.fixture
def desk(store: Store) -> LocalDesk:
    return LocalDesk(store, RiskConfig().priorities, "web1")


def finished_run(state: RunState = RunState.SUCCEEDED) -> RemediationRun:
    return RemediationRun(
        id="a1b2c3d4e5f6", fingerprint="fp1", rule="FilesystemAlmostFull",
        runbook="clean_directory", target="web1", variables={"path": "/var/tmp"}, state=state,
        agent="web1", created_at=NOW, updated_at=NOW + 5, approved_by="alice", rc=0,
        output="removed 3 files older than 7 days in /var/tmp (1.0 MiB freed)\n\nPLAY RECAP",
    )  # fmt: skip


def test_firing_alert_opens_a_ticket_a_person_can_act_on(
    desk: LocalDesk, make_alert: AlertFactory
) -> None:
    ticket = desk.on_alert(make_alert(), TICKET, None, NOW)
    assert ticket is not None
    assert ticket.title == "[P1 urgent] FilesystemAlmostFull on web1: / 96.2% > 95"
    assert (ticket.priority, ticket.state, ticket.host) == (Priority.P1, TicketState.OPEN, "web1")
    assert (ticket.response_due, ticket.resolution_due) == (NOW + 2 * 3600, NOW + 8 * 3600)
    for line in ("Host:        web1", "Rule:        FilesystemAlmostFull", "Value:       96.2",
                 "Threshold:   95", "Started at:  2023-11-14T22:12:20Z", "  mountpoint: /",
                 "  summary: / 96.2% > 95"):  # fmt: skip
        assert line in ticket.body.splitlines()


def test_priority_follows_the_level(desk: LocalDesk, make_alert: AlertFactory) -> None:
    ticket = desk.on_alert(make_alert(level=Level.WARNING, annotations=()), TICKET, None, NOW)
    assert ticket is not None and ticket.priority is Priority.P2
    assert ticket.title == "[P2 important] FilesystemAlmostFull on web1: value 96.2 (threshold 95)"


def test_rules_without_ticket_action_and_pending_alerts_open_nothing(
    desk: LocalDesk, store: Store, make_alert: AlertFactory
) -> None:
    assert desk.on_alert(make_alert(), RuleActions(), None, NOW) is None
    assert desk.on_alert(make_alert(AlertState.PENDING), TICKET, None, NOW) is None
    assert store.list_tickets() == []


def test_each_cycle_of_one_firing_is_one_ticket_and_one_occurrence(
    desk: LocalDesk, store: Store, make_alert: AlertFactory
) -> None:
    for cycle in range(3):
        desk.on_alert(make_alert(), TICKET, None, NOW + 15 * cycle)
    [ticket] = store.list_tickets()
    assert ticket.occurrences == 1 and [e.kind for e in ticket.history] == ["opened"]
    again = desk.on_alert(make_alert(starts_at=NOW + 900), TICKET, None, NOW + 900)
    assert again is not None and again.id == ticket.id and again.occurrences == 2


def test_escalation_is_recorded_in_the_history(desk: LocalDesk, make_alert: AlertFactory) -> None:
    desk.on_alert(make_alert(level=Level.WARNING), TICKET, None, NOW)
    ticket = desk.on_alert(make_alert(level=Level.CRITICAL, value=99.0), TICKET, None, NOW + 15)
    assert ticket is not None
    assert ticket.history[-1].text == "level warning -> critical (value 99)"


def test_resolution_reports_the_remediation_outcome(
    desk: LocalDesk, make_alert: AlertFactory
) -> None:
    desk.on_alert(make_alert(), TICKET, None, NOW)
    resolved = desk.on_alert(
        make_alert(AlertState.RESOLVED, value=71.0, ends_at=NOW + 300),
        TICKET,
        finished_run(),
        NOW + 300,
    )
    assert resolved is not None and resolved.state is TicketState.RESOLVED
    assert resolved.resolution == (
        "Alert cleared at 2023-11-14T22:18:20Z (value 71). Remediation: run a1b2c3d4e5f6 "
        "(clean_directory) succeeded, approved by alice, rc=0: removed 3 files older than 7 days "
        "in /var/tmp (1.0 MiB freed)."
    )


def test_resolution_finds_the_run_in_the_store_and_says_when_there_was_none(
    desk: LocalDesk, store: Store, make_alert: AlertFactory
) -> None:
    desk.on_alert(make_alert(), TICKET, None, NOW)
    resolved = desk.on_alert(
        make_alert(AlertState.RESOLVED, ends_at=NOW + 60), TICKET, None, NOW + 60
    )
    assert resolved is not None and resolved.resolution is not None
    assert resolved.resolution.endswith("No remediation run.")


def test_run_updates_land_in_the_ticket_history(desk: LocalDesk, make_alert: AlertFactory) -> None:
    created = dataclasses.replace(
        finished_run(RunState.PENDING_APPROVAL), approved_by=None, rc=None, output=""
    )
    ticket = desk.on_alert(make_alert(), TICKET, created, NOW)
    assert ticket is not None
    assert [(e.kind, e.text) for e in ticket.history][1:] == [
        ("run", "run a1b2c3d4e5f6 (clean_directory) pending_approval")
    ]
    ticket = desk.on_run_update(finished_run(RunState.VERIFIED), NOW + 700)
    assert ticket is not None
    assert ticket.history[-1].text.startswith("run a1b2c3d4e5f6 (clean_directory) verified, ")


def test_firing_after_resolution_opens_a_new_ticket_naming_the_old_one(
    desk: LocalDesk, store: Store, make_alert: AlertFactory
) -> None:
    first = desk.on_alert(make_alert(), TICKET, None, NOW)
    desk.on_alert(make_alert(AlertState.RESOLVED, ends_at=NOW + 60), TICKET, None, NOW + 60)
    second = desk.on_alert(make_alert(starts_at=NOW + 600), TICKET, None, NOW + 600)
    assert first is not None and second is not None and second.id != first.id
    assert f"Previous ticket: #{first.id} (resolved, opened 2023-11-14T22:13:20Z)" in second.body
    assert store.open_ticket_counts()[Priority.P1] == 1


def test_label_text_cannot_forge_ticket_lines_or_be_templated(
    desk: LocalDesk, make_alert: AlertFactory
) -> None:
    labels = (("host", "web1"), ("mountpoint", "/x\nPriority:    P3 general {{ 7*7 }}"))
    ticket = desk.on_alert(make_alert(labels=labels), TICKET, None, NOW)
    assert ticket is not None
    assert "  mountpoint: /x\\x0aPriority:    P3 general {{ 7*7 }}" in ticket.body.splitlines()
    assert "Priority:    P1 urgent" in ticket.body.splitlines()
    assert "49" not in ticket.body


def test_a_clear_missed_while_the_database_was_down_is_caught_up(
    desk: LocalDesk, store: Store, make_alert: AlertFactory
) -> None:
    desk.on_alert(make_alert(), TICKET, None, NOW)
    desk.on_alert(make_alert(fingerprint="fp2", labels=(("host", "web1"), ("mountpoint", "/srv"))),
                  TICKET, None, NOW)  # fmt: skip
    # The RESOLVED alert of fp1 was never delivered; the next cycle only sees fp2 still active.
    resolved = desk.reconcile({"fp2"}, NOW + 60)
    assert [t.fingerprint for t in resolved] == ["fp1"]
    assert resolved[0].resolution == (
        "Alert no longer active at 2023-11-14T22:14:20Z. No remediation run."
    )
    states = {t.fingerprint: t.state for t in store.list_tickets()}
    assert states == {"fp1": TicketState.RESOLVED, "fp2": TicketState.OPEN}
    assert desk.reconcile({"fp2"}, NOW + 120) == []


def test_the_ticket_carries_the_risk_rating(desk: LocalDesk, make_alert: AlertFactory) -> None:
    rated = make_alert(likelihood="likely", impact="high", risk="high", policy="approval",
                       priority=Priority.P2)  # fmt: skip
    ticket = desk.on_alert(rated, TICKET, None, NOW)
    assert ticket is not None
    assert "Risk:        high (likelihood likely, impact high; policy approval)" in ticket.body
    assert ticket.priority is Priority.P2


def test_a_run_whose_ticket_write_failed_is_named_when_the_ticket_opens(
    desk: LocalDesk, store: Store, make_alert: AlertFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run was created, then the database went away before the ticket was written; the
    next cycle sees no new run (one per firing) but the ticket it opens still names it."""
    alert = make_alert()
    created = store.create_run(
        NewRun(fingerprint=alert.fingerprint, activation=alert.starts_at, rule=alert.rule,
               runbook="clean_directory", target="web1", variables={}, agent="web1",
               expires_at=NOW + 3600),
        NOW,
    )  # fmt: skip
    assert created is not None

    def down(*args: object, **kwargs: object) -> None:
        raise StoreError("database is down")

    with monkeypatch.context() as m:
        m.setattr(store, "open_ticket", down)
        with pytest.raises(StoreError):
            desk.on_alert(alert, TICKET, created, NOW)
    ticket = desk.on_alert(alert, TICKET, None, NOW + 15)  # the next cycle: no new run
    assert ticket is not None
    assert [e.text for e in ticket.history if e.kind == "run"] == [
        f"run {created.id} (clean_directory) pending_approval"
    ]
    again = desk.on_alert(alert, TICKET, None, NOW + 30)
    assert again is not None and [e.kind for e in again.history].count("run") == 1


def test_ticket_only_opens_and_resolves_a_ticket_the_rule_did_not_ask_for(
    desk: LocalDesk, make_alert: AlertFactory
) -> None:
    no_ticket = RuleActions(runbook="clean_directory")
    assert desk.on_alert(make_alert(policy="auto"), no_ticket, None, NOW) is None
    opened = desk.on_alert(make_alert(policy="ticket_only"), no_ticket, None, NOW)
    assert opened is not None and opened.state is TicketState.OPEN
    done = desk.on_alert(
        make_alert(AlertState.RESOLVED, policy="ticket_only", ends_at=NOW + 60), no_ticket, None,
        NOW + 60,
    )  # fmt: skip
    assert done is not None and done.state is TicketState.RESOLVED
