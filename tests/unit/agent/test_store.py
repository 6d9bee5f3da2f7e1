"""The state store on SQLite files: migrations, alert history, run transitions, tickets, audit."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from agent import store_tables
from agent.errors import ConflictError, StoreError
from agent.model import Alert, AlertState, Level, Priority, RunState, TicketState, make_labels
from agent.store import SCHEMA_HEAD, NewRun, NewTicket, Store

NOW = 1_700_000_000.0


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'opswatch.db'}"


@pytest.fixture
def store(url: str) -> Store:
    s = Store(url, agent="web1")
    s.migrate()
    return s


def alert(
    state: AlertState = AlertState.FIRING, level: Level = Level.CRITICAL, **kw: object
) -> Alert:
    values: dict[str, object] = {
        "fingerprint": "fp1", "rule": "FilesystemAlmostFull", "state": state, "level": level,
        "labels": make_labels({"host": "web1", "mountpoint": "/"}),
        "annotations": make_labels({"summary": "/ 96.2% > 95"}), "value": 96.2,
        "starts_at": NOW - 60, "threshold": 95.0,
    }  # fmt: skip
    values.update(kw)
    return Alert(**values)  # type: ignore[arg-type]


def new_run(activation: float = NOW - 60, agent: str = "web1", **kw: object) -> NewRun:
    values: dict[str, object] = {
        "fingerprint": "fp1", "activation": activation, "rule": "FilesystemAlmostFull",
        "runbook": "clean_directory", "target": "web1", "variables": {"path": "/var/tmp"},
        "agent": agent, "expires_at": NOW + 3600,
    }  # fmt: skip
    values.update(kw)
    return NewRun(**values)  # type: ignore[arg-type]


def pending(store: Store, **kw: Any) -> str:
    run = store.create_run(new_run(**kw), NOW)
    assert run is not None
    return run.id


# -- migrations ---------------------------------------------------------------------------


def test_migrate_is_idempotent_and_creates_the_folder(url: str, tmp_path: Path) -> None:
    store = Store(url)
    store.migrate()
    store.migrate()
    assert (tmp_path / "state" / "opswatch.db").is_file()
    with store.engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert version == SCHEMA_HEAD
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_migration_matches_the_schema_the_code_uses(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), store_tables.metadata)
    assert diff == []


def _migrate(url: str, start: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    Store(url).migrate()


def test_two_processes_migrating_at_once_both_succeed(url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_migrate, args=(url, start)) for _ in range(3)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert Store(url).list_runs() == []


# -- alerts -------------------------------------------------------------------------------


def test_alert_transitions_are_recorded_and_active_alerts_restored(store: Store) -> None:
    store.save_alerts([alert(AlertState.PENDING, Level.WARNING)], NOW - 90)
    store.save_alerts([alert(AlertState.FIRING, Level.WARNING)], NOW - 60)
    store.save_alerts([alert(AlertState.FIRING, Level.WARNING, value=96.5)], NOW - 45)
    store.save_alerts([alert(AlertState.FIRING, Level.CRITICAL)], NOW - 30)
    assert store.active_alerts("web1") == [alert(AlertState.FIRING, Level.CRITICAL)]
    store.save_alerts([alert(AlertState.RESOLVED, Level.CRITICAL, ends_at=NOW)], NOW)

    steps = [(h.from_state, h.to_state, h.to_level) for h in store.alert_history("fp1")]
    assert steps == [
        (None, AlertState.PENDING, Level.WARNING),
        (AlertState.PENDING, AlertState.FIRING, Level.WARNING),
        (AlertState.FIRING, AlertState.FIRING, Level.CRITICAL),
        (AlertState.FIRING, AlertState.RESOLVED, Level.CRITICAL),
    ]
    assert store.active_alerts("web1") == []
    assert store.list_alerts(AlertState.RESOLVED)[0].ends_at == NOW


def test_alerts_belong_to_the_agent_that_saved_them(url: str) -> None:
    store = Store(url)  # no agent given: the alert's host label owns it
    store.migrate()
    store.save_alerts([alert()], NOW)
    store.save_alerts([alert(labels=make_labels({"host": "db1"}))], NOW, agent="db1")
    assert [a.label("host") for a in store.active_alerts("web1")] == ["web1"]
    assert [a.label("host") for a in store.active_alerts("db1")] == ["db1"]


# -- runs ---------------------------------------------------------------------------------


def test_create_run_once_per_activation(store: Store) -> None:
    first = store.create_run(new_run(), NOW)
    assert first is not None and first.state is RunState.PENDING_APPROVAL
    assert store.create_run(new_run(), NOW + 15) is None  # same firing, e.g. after a restart
    again = store.create_run(new_run(activation=NOW + 600), NOW + 600)
    assert again is not None and again.id != first.id
    assert len(store.list_runs()) == 2


def test_auto_approved_run_starts_approved_with_its_approval_recorded(store: Store) -> None:
    run = store.create_run(new_run(expires_at=None, approved_by="policy:auto"), NOW)
    assert run is not None and run.state is RunState.APPROVED
    assert [(a.actor, a.decision) for a in store.approvals(run.id)] == [("policy:auto", "approved")]


def test_approve_succeeds_once_and_names_the_approver_to_the_second(store: Store) -> None:
    run_id = pending(store)
    approved = store.approve_run(run_id, "alice", NOW + 1)
    assert (approved.state, approved.approved_by) == (RunState.APPROVED, "alice")
    with pytest.raises(ConflictError, match=f"run {run_id} is already approved by alice"):
        store.approve_run(run_id, "bob", NOW + 2)
    with pytest.raises(ConflictError, match="already approved by alice"):
        store.reject_run(run_id, "bob", "too risky", NOW + 2)
    assert [(a.actor, a.decision) for a in store.approvals(run_id)] == [("alice", "approved")]


def test_reject_records_the_reason_and_blocks_approval(store: Store) -> None:
    run_id = pending(store)
    rejected = store.reject_run(run_id, "bob", "maintenance window", NOW + 1)
    assert (rejected.state, rejected.reason) == (RunState.REJECTED, "maintenance window")
    with pytest.raises(ConflictError, match="already rejected by bob"):
        store.approve_run(run_id, "alice", NOW + 2)


def test_unknown_run_is_a_store_error_not_a_conflict(store: Store) -> None:
    with pytest.raises(StoreError, match="no run nope") as caught:
        store.approve_run("nope", "alice", NOW)
    assert not isinstance(caught.value, ConflictError)


def test_expired_approval_is_refused_then_expired(store: Store) -> None:
    run_id = pending(store, expires_at=NOW + 10)
    with pytest.raises(ConflictError, match="approval window closed"):
        store.approve_run(run_id, "alice", NOW + 10)
    assert [r.id for r in store.expire_runs(NOW + 10)] == [run_id]
    assert store.expire_runs(NOW + 11) == []
    with pytest.raises(ConflictError, match=r"expired .* without a decision"):
        store.approve_run(run_id, "alice", NOW + 12)


def _approve_with_own_store(url: str, run_id: str, actor: str, start: object, out: object) -> None:
    store = Store(url)
    start.wait()  # type: ignore[attr-defined]
    try:
        store.approve_run(run_id, actor, NOW + 1)
        out.put((actor, "ok"))  # type: ignore[attr-defined]
    except ConflictError as exc:
        out.put((actor, str(exc)))  # type: ignore[attr-defined]
    except Exception as exc:  # surface it in the parent instead of a queue timeout
        out.put((actor, f"error: {exc!r}"))  # type: ignore[attr-defined]


def _race_threads(url: str, run_id: str, actors: list[str]) -> list[tuple[str, str]]:
    """Each actor approves `run_id` from its own thread and Store, all released at once."""
    start = threading.Barrier(len(actors))
    results: list[tuple[str, str]] = []

    class Out:
        def put(self, item: tuple[str, str]) -> None:
            results.append(item)

    class Start:
        def wait(self) -> None:
            start.wait()

    threads = [
        threading.Thread(target=_approve_with_own_store, args=(url, run_id, a, Start(), Out()))
        for a in actors
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    return results


def test_racing_threads_with_separate_stores_approve_exactly_once(store: Store, url: str) -> None:
    run_id = pending(store)
    results = _race_threads(url, run_id, [f"op{i}" for i in range(8)])
    winners = [actor for actor, outcome in results if outcome == "ok"]
    assert len(results) == 8 and len(winners) == 1
    assert all(f"already approved by {winners[0]}" in o for _, o in results if o != "ok")
    assert len(store.approvals(run_id)) == 1


def test_racing_approvers_of_a_two_approver_run_give_one_first_and_one_second(
    store: Store, url: str
) -> None:
    run_id = pending(store, approvals_needed=2)
    results = _race_threads(url, run_id, ["alice", "bob"])
    assert sorted(results) == [("alice", "ok"), ("bob", "ok")]
    run = store.get_run(run_id)
    assert run is not None and run.state is RunState.APPROVED
    assert {run.first_approver, run.approved_by} == {"alice", "bob"}
    assert len(store.approvals(run_id)) == 2


def test_racing_processes_approve_exactly_once(store: Store, url: str) -> None:
    run_id = pending(store)
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_approve_with_own_store, args=(url, run_id, actor, start, out))
        for actor in ("alice", "bob", "carol", "dave")
    ]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(30)
    winners = [actor for actor, outcome in results if outcome == "ok"]
    assert len(winners) == 1
    assert store.get_run(run_id).approved_by == winners[0]  # type: ignore[union-attr]
    assert [a.actor for a in store.approvals(run_id)] == winners


def test_claim_finish_and_verify(store: Store) -> None:
    run_id = pending(store)
    store.approve_run(run_id, "alice", NOW + 1)
    assert store.claim_run(run_id, "db1", NOW + 2) is None  # another agent's run
    claimed = store.claim_run(run_id, "web1", NOW + 2)
    assert (
        claimed is not None and claimed.state is RunState.RUNNING and claimed.started_at == NOW + 2
    )
    assert store.claim_run(run_id, "web1", NOW + 3) is None
    done = store.finish_run(run_id, RunState.SUCCEEDED, 0, "removed 3 files\n\nPLAY", NOW + 4)
    assert (done.state, done.rc, done.finished_at) == (RunState.SUCCEEDED, 0, NOW + 4)
    with pytest.raises(ConflictError, match="is succeeded"):
        store.finish_run(run_id, RunState.FAILED, 2, "", NOW + 5)
    assert store.set_run_verified(run_id, True, NOW + 30).state is RunState.VERIFIED


def test_interrupt_running_touches_only_this_agents_running_runs(store: Store) -> None:
    mine, theirs, waiting = (
        pending(store),
        pending(store, activation=1.0, agent="db1"),
        pending(store, activation=2.0),
    )
    for run_id, agent in ((mine, "web1"), (theirs, "db1")):
        store.approve_run(run_id, "alice", NOW)
        store.claim_run(run_id, agent, NOW)
    assert [r.id for r in store.interrupt_running("web1", NOW + 5)] == [mine]
    assert store.get_run(mine).state is RunState.INTERRUPTED  # type: ignore[union-attr]
    assert store.get_run(theirs).state is RunState.RUNNING  # type: ignore[union-attr]
    assert store.get_run(waiting).state is RunState.PENDING_APPROVAL  # type: ignore[union-attr]


def test_run_counts(store: Store) -> None:
    pending(store)
    store.approve_run(pending(store, activation=1.0), "alice", NOW)
    pending(store, activation=2.0, runbook="restart_service")
    assert store.run_counts() == {
        ("clean_directory", "pending_approval"): 1,
        ("clean_directory", "approved"): 1,
        ("restart_service", "pending_approval"): 1,
    }


# -- tickets ------------------------------------------------------------------------------


def draft(**kw: object) -> NewTicket:
    values: dict[str, object] = {
        "agent": "web1", "fingerprint": "fp1", "rule": "FilesystemAlmostFull",
        "title": "[P1 urgent] FilesystemAlmostFull on web1: / 96.2% > 95", "body": "body",
        "priority": Priority.P1, "level": Level.CRITICAL, "host": "web1", "activation": NOW,
        "response_due": NOW + 7200, "resolution_due": NOW + 28800,
    }  # fmt: skip
    values.update(kw)
    return NewTicket(**values)  # type: ignore[arg-type]


def test_ticket_open_occurrence_resolve_with_history(store: Store) -> None:
    ticket = store.open_ticket(draft(), NOW)
    assert ticket.state is TicketState.OPEN and ticket.occurrences == 1
    assert store.add_occurrence(ticket.id, NOW, "same firing", NOW + 15) is None
    again = store.add_occurrence(ticket.id, NOW + 600, "fired again", NOW + 600)
    assert again is not None and again.occurrences == 2
    store.add_ticket_event(ticket.id, "run", "run abc (clean_directory) succeeded", NOW + 601)
    done = store.resolve_ticket(ticket.id, "Alert cleared", NOW + 900)
    assert (done.state, done.resolved_at, done.resolution) == (
        TicketState.RESOLVED, NOW + 900, "Alert cleared")  # fmt: skip
    assert [(e.kind, e.text) for e in done.history] == [
        ("opened", "opened"), ("occurrence", "fired again"),
        ("run", "run abc (clean_directory) succeeded"), ("resolved", "Alert cleared"),
    ]  # fmt: skip
    with pytest.raises(ConflictError, match="is not open"):
        store.resolve_ticket(ticket.id, "again", NOW + 901)
    assert store.get_ticket(ticket.id) == done


def test_one_open_ticket_per_fingerprint(store: Store) -> None:
    first = store.open_ticket(draft(), NOW)
    with pytest.raises(ConflictError, match="already has an open ticket"):
        store.open_ticket(draft(), NOW + 1)
    store.resolve_ticket(first.id, "cleared", NOW + 2)
    second = store.open_ticket(draft(previous_id=first.id), NOW + 3)
    assert store.ticket_for_fingerprint("fp1") == second
    assert [t.id for t in store.list_tickets()] == [second.id, first.id]
    assert [t.id for t in store.list_tickets(TicketState.RESOLVED)] == [first.id]


def test_open_ticket_counts_cover_every_priority(store: Store) -> None:
    store.open_ticket(draft(), NOW)
    store.open_ticket(draft(fingerprint="fp2", priority=Priority.P3), NOW)
    resolved = store.open_ticket(draft(fingerprint="fp3"), NOW)
    store.resolve_ticket(resolved.id, "cleared", NOW)
    assert store.open_ticket_counts() == {Priority.P1: 1, Priority.P2: 0, Priority.P3: 1}


# -- audit --------------------------------------------------------------------------------


def test_decisions_are_audited_in_the_table_and_the_audit_log(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = pending(store)
    with caplog.at_level(logging.INFO, logger="opswatch.audit"):
        store.approve_run(run_id, "alice", NOW + 1)
        store.audit("bob", "config.reload", "agent/web1", {"rules": 3}, NOW + 2)
    actions = [(e.actor, e.action, e.object) for e in store.list_audit()]
    assert actions[:3] == [
        ("bob", "config.reload", "agent/web1"),
        ("alice", "run.approve", f"run/{run_id}"),
        ("web1", "run.create", f"run/{run_id}"),
    ]
    logged = [r.getMessage() for r in caplog.records if r.name == "opswatch.audit"]
    assert logged == [f"alice run.approve run/{run_id} {{\"reason\": null}}",
                      'bob config.reload agent/web1 {"rules": 3}']  # fmt: skip


def test_schema_head_constant_matches_the_migrations(tmp_path: Path) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from agent.store import MIGRATIONS, SCHEMA_HEAD

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD
    store = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert store.schema_revision() is None
    store.migrate()
    assert store.schema_revision() == SCHEMA_HEAD


def test_silences_are_stored_listed_expired_and_audited(store: Store) -> None:
    from agent.risk_config import SilenceConfig

    now = 1_700_000_000.0
    silence = SilenceConfig.model_validate({
        "matchers": ['alertname="DiskFull"', 'host=~"web.*"'],
        "ends_at": "2023-11-14T23:13:20+00:00", "author": "alice", "comment": "disk swap tonight",
    })  # fmt: skip
    stored = store.add_silence(silence, now)
    assert stored.id == silence.id and stored.author == "alice"
    assert [s.id for s in store.list_silences(now)] == [silence.id]
    expired = store.expire_silence(silence.id, "bob", now + 60)
    assert expired.ends_at is not None and expired.ends_at.timestamp() == now + 60
    assert store.list_silences(now + 61) == []
    with pytest.raises(StoreError, match="no active silence"):
        store.expire_silence(silence.id, "bob", now + 120)
    actions = [(e.actor, e.action) for e in store.list_audit()]
    assert ("alice", "silence.add") in actions and ("bob", "silence.expire") in actions


def test_a_recurring_maintenance_window_is_stored_and_honoured(store: Store) -> None:
    from agent.model import Alert, AlertState, Level, make_labels
    from agent.risk_config import SilenceConfig
    from agent.silences import silenced_by

    window = SilenceConfig.model_validate({
        "id": "sunday-backup", "matchers": ['alertname="SustainedLoad"'], "author": "ops",
        "comment": "weekly backup", "recurring": [
            {"weekdays": ["sun"], "start": "02:00", "end": "04:00", "time_zone": "Europe/Berlin"}],
    })  # fmt: skip
    stored = store.add_silence(window, 1_700_000_000.0)
    assert stored.ends_at is None and stored.recurring == window.recurring
    (listed,) = store.list_silences(1_800_000_000.0)  # no end: still listed years later
    alert = Alert(fingerprint="f", rule="SustainedLoad", state=AlertState.FIRING,
                  level=Level.WARNING, labels=make_labels({"alertname": "SustainedLoad"}),
                  annotations=(), value=3.0, starts_at=0.0)  # fmt: skip
    sunday_3am_berlin = 1_700_355_600.0  # 2023-11-19 03:00 CET
    monday_3am_berlin = sunday_3am_berlin + 86400
    assert silenced_by(alert, [listed], sunday_3am_berlin) == "sunday-backup"
    assert silenced_by(alert, [listed], monday_3am_berlin) is None
