"""Remediation runs and their approvals in the state store.

Every transition is one conditional UPDATE (`... WHERE state = <expected>`), so two processes
approving, rejecting or claiming the same run at once cannot both win: the loser sees no row
and gets a ConflictError saying who or what got there first. Each transition writes its audit
row in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from agent import store_tables as t
from agent.errors import ConflictError, NotFoundError, StoreError
from agent.model import RemediationRun, RunState
from agent.store_base import AuditEntry, StoreBase

_RUN = t.runs.c


@dataclass(frozen=True, slots=True)
class Approval:
    """One decision on a run: approved or rejected, by whom, when and why."""

    run_id: str
    actor: str
    decision: str
    reason: str | None
    at: float


@dataclass(frozen=True, slots=True)
class NewRun:
    """What the run service knows when it asks for a run."""

    fingerprint: str
    activation: float
    """The alert's `starts_at`: one run per firing, however often the agent restarts."""
    rule: str
    runbook: str
    target: str
    variables: Mapping[str, str]
    agent: str
    expires_at: float | None = None
    approved_by: str | None = None
    """Set for runs approved by policy (`approval: auto`): they start `approved`."""
    approvals_needed: int = 1
    """For runs that wait: how many different people must approve (1, or 2)."""


def new_run_id() -> str:
    """A short random run id (48 bits), easy to type in the CLI."""
    return secrets.token_hex(6)


def iso(ts: float | None) -> str:
    """UNIX seconds as an ISO 8601 UTC time for messages."""
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_from_row(row: Row[Any]) -> RemediationRun:
    m = row._mapping
    return RemediationRun(
        id=m["id"], fingerprint=m["fingerprint"], rule=m["rule"], runbook=m["runbook"],
        target=m["target"], variables=dict(m["variables"]), state=RunState(m["state"]),
        agent=m["agent"], created_at=float(m["created_at"]), updated_at=float(m["updated_at"]),
        expires_at=_time(m["expires_at"]), started_at=_time(m["started_at"]),
        finished_at=_time(m["finished_at"]),
        approved_by=m["approved_by"], reason=m["reason"], rc=m["rc"], output=m["output"],
        approvals_needed=int(m["approvals_needed"]), first_approver=m["first_approver"],
        preview=m["preview"],
    )  # fmt: skip


class RunsMixin(StoreBase):
    """Runs: created once per activation, moved between states by conditional updates."""

    def create_run(self, new: NewRun, now: float) -> RemediationRun | None:
        """Record a run before anything executes; None if this activation already has one."""
        state = RunState.APPROVED if new.approved_by else RunState.PENDING_APPROVAL
        run_id = new_run_id()
        values = {
            "id": run_id, "agent": new.agent, "fingerprint": new.fingerprint,
            "activation": new.activation, "rule": new.rule, "runbook": new.runbook,
            "target": new.target, "variables": dict(new.variables), "state": state.value,
            "created_at": now, "updated_at": now, "expires_at": new.expires_at,
            "approved_by": new.approved_by, "output": "", "preview": "",
            "approvals_needed": 1 if new.approved_by else new.approvals_needed,
        }  # fmt: skip
        detail = {"runbook": new.runbook, "rule": new.rule, "state": state.value}
        entry = AuditEntry(now, new.agent, "run.create", f"run/{run_id}", detail)
        with self._tx() as conn:
            if self._insert_ignore(conn, t.runs, values) is None:
                return None
            if new.approved_by:
                self._decide(conn, run_id, new.approved_by, "approved", "approval: auto", now)
            self._audit_row(conn, entry)
            run = self._load_run(conn, run_id)
        self._log_audit(entry)
        return run

    def get_run(self, run_id: str) -> RemediationRun | None:
        """The run with this id, or None."""
        with self._tx() as conn:
            return self._find_run(conn, run_id)

    def list_runs(
        self,
        state: RunState | None = None,
        limit: int = 100,
        *,
        agent: str | None = None,
        fingerprint: str | None = None,
    ) -> list[RemediationRun]:
        """Runs, newest first, optionally filtered by state, agent and fingerprint."""
        query = select(t.runs).order_by(_RUN.created_at.desc(), _RUN.id).limit(limit)
        for column, wanted in ((_RUN.state, state and state.value), (_RUN.agent, agent),
                               (_RUN.fingerprint, fingerprint)):  # fmt: skip
            if wanted is not None:
                query = query.where(column == wanted)
        with self._tx() as conn:
            return [run_from_row(row) for row in conn.execute(query)]

    def approvals(self, run_id: str) -> list[Approval]:
        """Every decision recorded on a run, oldest first."""
        query = select(t.approvals).where(t.approvals.c.run_id == run_id).order_by(t.approvals.c.id)
        with self._tx() as conn:
            return [_approval(row) for row in conn.execute(query)]

    def approve_run(self, run_id: str, actor: str, now: float) -> RemediationRun:
        """pending_approval → approved, exactly once; ConflictError for the losers.

        A run that needs two approvers records the first person and stays pending; the second
        approval must come from someone else. Each step is one conditional UPDATE, so two
        people approving at once from two processes give one first and one second approval.
        """
        pending = and_(_RUN.id == run_id, _RUN.state == RunState.PENDING_APPROVAL.value,
                       _RUN.expires_at > now)  # fmt: skip
        complete = and_(pending, or_(
            _RUN.approvals_needed <= 1,
            and_(_RUN.first_approver.is_not(None), _RUN.first_approver != actor),
        ))  # fmt: skip
        first = and_(pending, _RUN.approvals_needed >= 2, _RUN.first_approver.is_(None))
        approved = {"state": RunState.APPROVED.value, "approved_by": actor}
        with self._tx() as conn:
            rows = self._update(conn, complete, approved, now)
            action, note = "run.approve", None
            if not rows:
                rows = self._update(conn, first, {"first_approver": actor}, now)
                action, note = "run.approve_first", "first of two approvals"
            if not rows:
                # On PostgreSQL another approver's first approval may have committed while
                # this one waited on the row: asked again, the run now needs just this one.
                rows = self._update(conn, complete, approved, now)
                action, note = "run.approve", None
            if rows:
                entry = AuditEntry(now, actor, action, f"run/{run_id}", {"reason": note})
                self._decide(conn, run_id, actor, "approved", note, now)
                self._audit_row(conn, entry)
            else:
                message = self._conflict_message(conn, run_id, now, actor)
        if not rows:
            raise ConflictError(message)
        self._log_audit(entry)
        return rows[0]

    def reject_run(self, run_id: str, actor: str, reason: str, now: float) -> RemediationRun:
        """pending_approval → rejected, exactly once; ConflictError for the losers."""
        return self._decide_run(run_id, actor, "rejected", reason, now)

    def expire_runs(self, now: float) -> list[RemediationRun]:
        """pending_approval → expired for every run whose approval window has closed."""
        where = and_(_RUN.state == RunState.PENDING_APPROVAL.value, _RUN.expires_at <= now)
        return self._transition(where, {"state": RunState.EXPIRED.value}, now, "run.expire")

    def expire_pending(self, fingerprints: set[str], now: float) -> list[RemediationRun]:
        """Not-yet-started runs (pending or approved) of alerts that cleared → expired.

        The fault is gone, so nothing is left to fix; claim_run only takes `approved` runs, so a
        run expired here can never start.
        """
        if not fingerprints:
            return []
        waiting = (RunState.PENDING_APPROVAL.value, RunState.APPROVED.value)
        where = and_(_RUN.state.in_(waiting), _RUN.fingerprint.in_(fingerprints))
        return self._transition(where, {"state": RunState.EXPIRED.value}, now, "run.expire")

    def claim_run(self, run_id: str, agent: str, now: float) -> RemediationRun | None:
        """approved → running for this agent, atomically; None if another claimer won."""
        where = and_(_RUN.id == run_id, _RUN.agent == agent, _RUN.state == RunState.APPROVED.value)
        values = {"state": RunState.RUNNING.value, "started_at": now}
        done = self._transition(where, values, now, "run.start")
        return done[0] if done else None

    def finish_run(
        self, run_id: str, state: RunState, rc: int | None, output: str, now: float
    ) -> RemediationRun:
        """running → succeeded/failed with the runbook's exit code and output."""
        if state not in (RunState.SUCCEEDED, RunState.FAILED):
            raise ValueError(f"a run finishes succeeded or failed, not {state.value}")
        where = and_(_RUN.id == run_id, _RUN.state == RunState.RUNNING.value)
        values = {"state": state.value, "rc": rc, "output": output, "finished_at": now}
        return self._one(run_id, self._transition(where, values, now, "run.finish"), state.value)

    def interrupt_running(self, agent: str, now: float) -> list[RemediationRun]:
        """running → interrupted for this agent (at start-up: a run is never repeated)."""
        where = and_(_RUN.agent == agent, _RUN.state == RunState.RUNNING.value)
        values = {"state": RunState.INTERRUPTED.value, "finished_at": now}
        return self._transition(where, values, now, "run.interrupt")

    def set_run_verified(self, run_id: str, effective: bool, now: float) -> RemediationRun:
        """succeeded → verified (the alert cleared) or ineffective (it did not)."""
        state = RunState.VERIFIED if effective else RunState.INEFFECTIVE
        where = and_(_RUN.id == run_id, _RUN.state == RunState.SUCCEEDED.value)
        done = self._transition(where, {"state": state.value}, now, f"run.{state.value}")
        return self._one(run_id, done, state.value)

    def run_counts(self, agent: str | None = None) -> dict[tuple[str, str], int]:
        """Number of runs per (runbook, state), for metrics."""
        query = select(_RUN.runbook, _RUN.state, func.count()).group_by(_RUN.runbook, _RUN.state)
        if agent is not None:
            query = query.where(_RUN.agent == agent)
        with self._tx() as conn:
            return {(runbook, state): count for runbook, state, count in conn.execute(query)}

    # -- internals -------------------------------------------------------------------------

    def _decide_run(
        self, run_id: str, actor: str, decision: str, reason: str | None, now: float
    ) -> RemediationRun:
        state = RunState.APPROVED if decision == "approved" else RunState.REJECTED
        values: dict[str, Any] = {"state": state.value, "reason": reason}
        if state is RunState.APPROVED:
            values["approved_by"] = actor
        where = and_(_RUN.id == run_id, _RUN.state == RunState.PENDING_APPROVAL.value,
                     _RUN.expires_at > now)  # fmt: skip
        entry = AuditEntry(now, actor, f"run.{decision[:-1]}", f"run/{run_id}", {"reason": reason})
        with self._tx() as conn:
            rows = self._update(conn, where, values, now)
            if rows:
                self._decide(conn, run_id, actor, decision, reason, now)
                self._audit_row(conn, entry)
            else:
                message = self._conflict_message(conn, run_id, now)
        if not rows:
            raise ConflictError(message)
        self._log_audit(entry)
        return rows[0]

    def _conflict_message(
        self, conn: Connection, run_id: str, now: float, actor: str | None = None
    ) -> str:
        run = self._find_run(conn, run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id}")
        still_open = run.expires_at is None or run.expires_at > now
        if run.state is RunState.PENDING_APPROVAL and still_open and run.first_approver == actor:
            return (
                f"run {run_id} needs two different approvers: {actor} has approved it, "
                "someone else must give the second approval"
            )
        ap = t.approvals.c
        query = select(t.approvals).where(ap.run_id == run_id).order_by(ap.id.desc())
        last = conn.execute(query).first()
        who = last._mapping["actor"] if last is not None else "opswatch"
        if run.state is RunState.PENDING_APPROVAL:
            return (
                f"run {run_id} can no longer be decided: its approval window closed at "
                f"{iso(run.expires_at)}"
            )
        if run.state is RunState.EXPIRED:
            return f"run {run_id} expired at {iso(run.expires_at)} without a decision"
        if run.state is RunState.REJECTED:
            return f"run {run_id} is already rejected by {who}"
        if run.state is RunState.APPROVED:
            return f"run {run_id} is already approved by {run.approved_by or who}"
        return f"run {run_id} is already {run.state.value} (approved by {run.approved_by or who})"

    def _decide(
        self, conn: Connection, run_id: str, actor: str, decision: str, reason: str | None,
        now: float,
    ) -> None:  # fmt: skip
        conn.execute(insert(t.approvals).values(
            run_id=run_id, actor=actor, decision=decision, reason=reason, at=now))  # fmt: skip

    def _update(
        self, conn: Connection, where: ColumnElement[bool], values: dict[str, Any], now: float
    ) -> list[RemediationRun]:
        stmt = update(t.runs).where(where).values(updated_at=now, **values).returning(*t.runs.c)
        return [run_from_row(row) for row in conn.execute(stmt)]

    def _transition(
        self, where: ColumnElement[bool], values: dict[str, Any], now: float, action: str
    ) -> list[RemediationRun]:
        with self._tx() as conn:
            done = self._update(conn, where, values, now)
            entries = [self._audit_row(conn, _entry(run, action, now)) for run in done]
        for entry in entries:
            self._log_audit(entry)
        return done

    def _one(self, run_id: str, done: Sequence[RemediationRun], wanted: str) -> RemediationRun:
        if done:
            return done[0]
        with self._tx() as conn:
            run = self._find_run(conn, run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id}")
        raise ConflictError(f"run {run_id} is {run.state.value}; it cannot become {wanted}")

    def _find_run(self, conn: Connection, run_id: str) -> RemediationRun | None:
        row = conn.execute(select(t.runs).where(_RUN.id == run_id)).first()
        return run_from_row(row) if row is not None else None

    def _load_run(self, conn: Connection, run_id: str) -> RemediationRun:
        run = self._find_run(conn, run_id)
        if run is None:
            raise StoreError(f"run {run_id} vanished right after it was written")
        return run


def _time(value: float | None) -> float | None:
    # SQLite's RETURNING hands back whole-number REALs as int.
    return None if value is None else float(value)


def _approval(row: Row[Any]) -> Approval:
    m = row._mapping
    return Approval(m["run_id"], m["actor"], m["decision"], m["reason"], m["at"])


def _entry(run: RemediationRun, action: str, now: float) -> AuditEntry:
    detail = {"runbook": run.runbook, "state": run.state.value, "rc": run.rc}
    return AuditEntry(now, run.agent, action, f"run/{run.id}", detail)
