"""The state store on a real PostgreSQL database: what a fleet sharing one database relies on."""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from agent import store_tables
from agent.errors import ConflictError, StoreError
from agent.model import Level, Priority, RunState
from agent.store import SCHEMA_HEAD, NewRun, NewTicket, Store

pytestmark = pytest.mark.integration

NOW = 1_700_000_000.0


def new_run(agent: str = "web1", activation: float = NOW - 60) -> NewRun:
    return NewRun(
        fingerprint="fp1", activation=activation, rule="FilesystemAlmostFull",
        runbook="clean_directory", target=agent, variables={"path": "/var/tmp"}, agent=agent,
        expires_at=NOW + 3600,
    )  # fmt: skip


def _in_process(url: str, job: str, arg: str, start: Any, out: Any) -> None:
    store = Store(url)
    start.wait()
    try:
        if job == "migrate":
            store.migrate()
            out.put(("migrate", "ok"))
        elif job == "create":
            created = store.create_run(new_run(agent=arg), NOW)
            out.put((arg, "created" if created else "exists"))
        else:
            store.approve_run(job, arg, NOW + 1)
            out.put((arg, "ok"))
    except ConflictError as exc:
        out.put((arg, str(exc)))
    except Exception as exc:  # surface it in the parent instead of a queue timeout
        out.put((arg, f"error: {exc!r}"))
    finally:
        store.close()


def race(url: str, job: str, args: list[str]) -> list[tuple[str, str]]:
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_in_process, args=(url, job, a, start, out)) for a in args]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    return results


@pytest.fixture
def store(postgres_url: str) -> Store:
    s = Store(postgres_url, agent="web1")
    s.migrate()
    return s


def test_agents_starting_together_migrate_once(postgres_url: str) -> None:
    assert race(postgres_url, "migrate", ["a", "b", "c", "d"]) == [("migrate", "ok")] * 4
    store = Store(postgres_url)
    store.migrate()  # and again: a no-op
    with store.engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert version == SCHEMA_HEAD
        assert compare_metadata(MigrationContext.configure(conn), store_tables.metadata) == []


def test_two_agents_racing_on_one_firing_create_one_run(store: Store, postgres_url: str) -> None:
    results = race(postgres_url, "create", ["web1", "web1-standby"])
    assert sorted(outcome for _, outcome in results) == ["created", "exists"]
    assert len(store.list_runs()) == 1
    assert store.create_run(new_run(), NOW + 15) is None
    assert store.create_run(new_run(activation=NOW + 600), NOW + 600) is not None


def test_approvers_racing_from_several_processes_approve_exactly_once(
    store: Store, postgres_url: str
) -> None:
    run = store.create_run(new_run(), NOW)
    assert run is not None
    results = race(postgres_url, run.id, ["alice", "bob", "carol", "dave", "erin", "frank"])
    winners = [actor for actor, outcome in results if outcome == "ok"]
    assert len(winners) == 1
    losers = [outcome for _, outcome in results if outcome != "ok"]
    assert losers == [f"run {run.id} is already approved by {winners[0]}"] * 5
    assert [a.actor for a in store.approvals(run.id)] == winners


def test_two_approvers_racing_from_two_processes_give_one_first_and_one_second(
    store: Store, postgres_url: str
) -> None:
    """Under READ COMMITTED the second approver's first-approval UPDATE waits for the first
    one's row lock and then matches nothing: it must still end as the second approval."""
    for n in range(8):  # a race: several rounds, each a new run
        made = store.create_run(replace(new_run(activation=NOW + n), approvals_needed=2), NOW)
        assert made is not None
        assert sorted(race(postgres_url, made.id, ["alice", "bob"])) == [
            ("alice", "ok"), ("bob", "ok")]  # fmt: skip
        run = store.get_run(made.id)
        assert run is not None and run.state is RunState.APPROVED
        assert {run.first_approver, run.approved_by} == {"alice", "bob"}


def test_lifecycle_and_tickets_on_postgres(store: Store) -> None:
    run = store.create_run(new_run(), NOW)
    assert run is not None
    with pytest.raises(ConflictError, match="approval window closed"):
        store.approve_run(run.id, "alice", NOW + 3600)
    store.approve_run(run.id, "alice", NOW + 1)
    assert store.claim_run(run.id, "web1", NOW + 2) is not None
    assert [r.id for r in store.interrupt_running("web1", NOW + 3)] == [run.id]
    assert store.run_counts() == {("clean_directory", RunState.INTERRUPTED.value): 1}

    draft = NewTicket(
        agent="web1", fingerprint="fp1", rule="FilesystemAlmostFull", title="t", body="b",
        priority=Priority.P1, level=Level.CRITICAL, host="web1", activation=NOW,
        response_due=NOW + 7200, resolution_due=NOW + 28800,
    )  # fmt: skip
    ticket = store.open_ticket(draft, NOW)
    with pytest.raises(ConflictError, match="already has an open ticket"):
        store.open_ticket(draft, NOW + 1)
    assert store.open_ticket_counts() == {Priority.P1: 1, Priority.P2: 0, Priority.P3: 0}
    store.resolve_ticket(ticket.id, "cleared", NOW + 60)
    assert [e.kind for e in store.get_ticket(ticket.id).history] == ["opened", "resolved"]  # type: ignore[union-attr]


def test_a_wrong_password_never_shows_the_password(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Sup3r-s3cret-pw"
    url = sa.make_url(postgres_url).set(password=secret).render_as_string(hide_password=False)
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreError) as caught:
        Store(url).migrate()
    assert "password authentication failed" in str(caught.value)
    assert "***" in str(caught.value) and secret not in str(caught.value)
    assert secret not in caplog.text
