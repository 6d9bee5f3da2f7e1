"""The life of a remediation run: created per alert firing, approved or not, executed once.

    pending_approval ─approve─> approved ─claim─> running ─> succeeded ─> verified | ineffective
          │  └─reject─> rejected                     │  └─> failed
          └─expire─> expired                         └─(agent restart)─> interrupted

Each step is written to the store before the next side effect happens: a run is claimed
(`running`) before ansible starts and a restart turns `running` into `interrupted`, never into a
second execution. While a run of an alert is approved or running no other is created, and after
an interrupted run the next one waits for a person even if the rule says `approval: auto`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

from agent.config import RemediationSection, RuleActions
from agent.errors import ConflictError, RemediationError
from agent.model import Alert, AlertState, RemediationRun, RunState
from agent.store import NewRun, Store
from remediation import policy
from remediation.runbook import RunbookExecutor

log = logging.getLogger(__name__)

Render = Callable[[str, Mapping[str, str], float | None, float | None], str]
"""`agent.rules.render_template`: fills `{label}`, `{value}`, `{threshold}` (never Jinja)."""

AUTO_APPROVER = "policy:auto"
FINISH_ATTEMPTS = 5
FINISH_BACKOFF = 0.5
"""Seconds before the first retry of recording an outcome; doubles each time (~15 s in all)."""


def _default_render() -> Render:
    from agent.rules import render_template

    return render_template


class RunService:
    """Creates, decides, executes and verifies the runs of one agent."""

    def __init__(
        self,
        store: Store,
        runbooks: RunbookExecutor,
        config: RemediationSection,
        agent_name: str,
        *,
        render: Render | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.runbooks = runbooks
        self.config = config
        self.agent = agent_name
        self.render = render or _default_render()
        self.clock = clock

    def on_alert(self, alert: Alert, actions: RuleActions, now: float) -> RemediationRun | None:
        """Create the run for a firing alert (once per activation); None if none was created.

        The rule's actions are bounded by the alert's risk policy (remediation.policy): no run
        under `ticket_only`, one or two people to approve it under `approval`/`two_approvers`,
        and a flapping alert never runs unattended.
        """
        if alert.state is not AlertState.FIRING or actions.runbook is None:
            return None
        decision = policy.decide(alert, actions)
        if not decision.run:  # ticket_only: its ticket shows the policy (remediation: ticket_only)
            return None
        try:
            self.runbooks.config(actions.runbook)
        except RemediationError as exc:
            log.error("no run for alert: %s", exc, extra={"fingerprint": alert.fingerprint})
            return None
        new = self._guarded(
            self._new_run(alert, actions, actions.runbook, now, decision.approvals), now
        )
        run = self.store.create_run(new, now) if new is not None else None
        if run is not None:  # once per firing: the policy's word goes with it
            log.info("run created", extra={"run": run.id, "runbook": run.runbook,
                                           "state": run.state.value, "rule": run.rule,
                                           "held_back": decision.why or None})  # fmt: skip
        return run

    def _new_run(
        self, alert: Alert, actions: RuleActions, runbook: str, now: float, approvals: int
    ) -> NewRun:
        labels = dict(alert.labels)
        variables = {
            name: self.render(template, labels, alert.value, alert.threshold)
            for name, template in actions.vars.items()
        }
        auto = approvals == 0
        return NewRun(
            fingerprint=alert.fingerprint, activation=alert.starts_at, rule=alert.rule,
            runbook=runbook, target=alert.label("host", self.agent), variables=variables,
            agent=self.agent, expires_at=None if auto else now + self.config.approval_ttl,
            approved_by=AUTO_APPROVER if auto else None, approvals_needed=max(approvals, 1),
        )  # fmt: skip

    def _guarded(self, new: NewRun, now: float) -> NewRun | None:
        """No second run while one is in flight; after an interruption a person decides."""
        latest = self.store.list_runs(limit=1, fingerprint=new.fingerprint)
        if not latest:
            return new
        previous = latest[0]
        if previous.state in (RunState.APPROVED, RunState.RUNNING):
            return None
        if previous.state is RunState.INTERRUPTED and new.approved_by:
            log.warning("previous run was interrupted: this one needs approval",
                        extra={"run": previous.id, "fingerprint": new.fingerprint})  # fmt: skip
            return dataclasses.replace(new, approved_by=None,
                                       expires_at=now + self.config.approval_ttl)  # fmt: skip
        return new

    def approve(self, run_id: str, actor: str, now: float) -> RemediationRun:
        """Approve a pending run (audit-logged); ConflictError if it was decided or expired."""
        return self.store.approve_run(run_id, actor, now)

    def reject(self, run_id: str, actor: str, reason: str, now: float) -> RemediationRun:
        """Reject a pending run (audit-logged); ConflictError if it was decided or expired."""
        return self.store.reject_run(run_id, actor, reason, now)

    def expire(self, now: float, cleared: set[str] | None = None) -> list[RemediationRun]:
        """Expire runs whose approval window closed, and unstarted runs of cleared alerts."""
        expired = self.store.expire_runs(now)
        return expired + self.store.expire_pending(cleared or set(), now)

    def execute_pending(self, now: float) -> list[RemediationRun]:
        """Claim and execute every approved run of this agent, oldest first (blocking)."""
        approved = self.store.list_runs(RunState.APPROVED, limit=1000, agent=self.agent)
        done = []
        for run in reversed(approved):
            try:
                claimed = self.store.claim_run(run.id, self.agent, now)
                if claimed is not None:
                    done.append(self._execute(claimed))
            except Exception as exc:  # the others still run; this one is never run twice
                log.error("run could not be completed: %s", exc, extra={"run": run.id})
        return done

    def _execute(self, run: RemediationRun) -> RemediationRun:
        try:
            result = self.runbooks.run(run)
        except RemediationError as exc:
            log.error("runbook could not run: %s", exc, extra={"run": run.id})
            return self.store.finish_run(run.id, RunState.FAILED, None, str(exc), self.clock())
        except Exception as exc:  # never leave a run "running" behind a bug
            log.exception("runbook crashed", extra={"run": run.id})
            text = f"internal error: {type(exc).__name__}: {exc}"
            return self.store.finish_run(run.id, RunState.FAILED, None, text, self.clock())
        state = RunState.SUCCEEDED if result.ok else RunState.FAILED
        log.info("runbook finished", extra={"run": run.id, "state": state.value, "rc": result.rc})
        return self._record(run.id, state, result.rc, result.record())

    def _record(self, run_id: str, state: RunState, rc: int | None, output: str) -> RemediationRun:
        """Write a finished run's outcome, retrying a database blip: the run already happened."""
        for attempt in range(FINISH_ATTEMPTS):
            try:
                return self.store.finish_run(run_id, state, rc, output, self.clock())
            except ConflictError:
                raise
            except Exception as exc:
                if attempt == FINISH_ATTEMPTS - 1:
                    raise
                log.warning("recording the run's outcome failed, retrying: %s", exc,
                            extra={"run": run_id})  # fmt: skip
                time.sleep(FINISH_BACKOFF * 2**attempt)
        raise AssertionError("unreachable")

    def verify(self, active_fingerprints: set[str], now: float) -> list[RemediationRun]:
        """Mark succeeded runs verified (alert cleared) or ineffective (still firing too long)."""
        changed = []
        for run in self.store.list_runs(RunState.SUCCEEDED, limit=1000, agent=self.agent):
            cleared = run.fingerprint not in active_fingerprints
            overdue = now - (run.finished_at or run.updated_at) >= self.config.verify_within
            if cleared or overdue:
                try:
                    changed.append(self.store.set_run_verified(run.id, cleared, now))
                except ConflictError:
                    continue  # another process moved it on
        return changed

    def recover(self, now: float) -> list[RemediationRun]:
        """At start-up: runs left `running` by a crash become `interrupted`, never re-run."""
        interrupted = self.store.interrupt_running(self.agent, now)
        for run in interrupted:
            log.warning("run interrupted by a restart; not repeated",
                        extra={"run": run.id, "runbook": run.runbook})  # fmt: skip
        return interrupted
