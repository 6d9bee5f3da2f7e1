"""The run lifecycle: one run per firing, decisions, execution once, verification, recovery."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import RemediationSection, RuleActions, RunbookConfig
from agent.errors import ConflictError, RemediationError
from agent.model import Alert, AlertState, RemediationRun, RunState
from agent.store import Store
from remediation.policy import decide
from remediation.runbook import RunbookExecutor, RunbookResult
from remediation.runs import RunService

NOW = 1_700_000_000.0  # the make_alert fixture's clock
AlertFactory = Callable[..., Alert]
CONFIG = RemediationSection(approval_ttl=3600, verify_within=600)
CLEAN = RuleActions(runbook="clean_directory", vars={"path": "{mountpoint}/var/tmp"})


class FakeExecutor(RunbookExecutor):
    """Records what would run; answers with a scripted result."""

    def __init__(self, tmp: Path, result: RunbookResult | Exception | None = None) -> None:
        config = RunbookConfig(playbook="clean_directory.yml", vars={"roots": ["/var/tmp"]})
        super().__init__(tmp, {"clean_directory": config}, tmp / "work")
        self.result = result or RunbookResult(True, 0, "successful", "PLAY RECAP", True,
                                              "removed 3 files (1.0 MiB freed)")  # fmt: skip
        self.executed: list[str] = []

    def run(self, run: RemediationRun, timeout: float | None = None) -> RunbookResult:
        self.executed.append(run.id)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def executor(tmp_path: Path) -> FakeExecutor:
    return FakeExecutor(tmp_path)


@pytest.fixture
def service(store: Store, executor: FakeExecutor) -> RunService:
    return RunService(store, executor, CONFIG, "web1", clock=lambda: NOW + 100)


def test_firing_alert_creates_one_pending_run_with_rendered_variables(
    service: RunService, make_alert: AlertFactory
) -> None:
    run = service.on_alert(make_alert(), CLEAN, NOW)
    assert run is not None
    assert (run.state, run.runbook, run.target, run.expires_at) == (
        RunState.PENDING_APPROVAL, "clean_directory", "web1", NOW + 3600)  # fmt: skip
    assert dict(run.variables) == {"path": "//var/tmp"}
    assert service.on_alert(make_alert(), CLEAN, NOW + 15) is None  # the same firing
    assert len(service.store.list_runs()) == 1


def test_auto_approval_creates_an_approved_run(
    service: RunService, make_alert: AlertFactory
) -> None:
    actions = CLEAN.model_copy(update={"approval": "auto"})
    run = service.on_alert(make_alert(), actions, NOW)
    assert run is not None and (run.state, run.approved_by) == (RunState.APPROVED, "policy:auto")


def test_no_run_without_a_runbook_or_unless_firing(
    service: RunService, make_alert: AlertFactory
) -> None:
    assert service.on_alert(make_alert(), RuleActions(ticket=True), NOW) is None
    assert service.on_alert(make_alert(AlertState.PENDING), CLEAN, NOW) is None
    assert service.on_alert(make_alert(AlertState.RESOLVED), CLEAN, NOW) is None
    unknown = RuleActions(runbook="reboot_host")
    assert service.on_alert(make_alert(), unknown, NOW) is None
    assert service.store.list_runs() == []


def test_label_values_are_copied_verbatim_into_variables(
    service: RunService, make_alert: AlertFactory
) -> None:
    evil = "/srv/{{ lookup('pipe','id') }}"
    run = service.on_alert(make_alert(labels=(("host", "web1"), ("mountpoint", evil))), CLEAN, NOW)
    assert run is not None and run.variables["path"] == evil + "/var/tmp"


def test_approved_run_executes_once_and_records_its_outcome(
    service: RunService, executor: FakeExecutor, make_alert: AlertFactory
) -> None:
    run = service.on_alert(make_alert(), CLEAN, NOW)
    assert run is not None
    assert service.execute_pending(NOW + 1) == []  # not approved yet
    service.approve(run.id, "alice", NOW + 2)
    [done] = service.execute_pending(NOW + 3)
    assert (done.state, done.rc, done.started_at, done.finished_at) == (
        RunState.SUCCEEDED, 0, NOW + 3, NOW + 100)  # fmt: skip
    assert done.output.startswith("removed 3 files (1.0 MiB freed)\n\nPLAY RECAP")
    assert service.execute_pending(NOW + 4) == []
    assert executor.executed == [run.id]


def test_failed_or_unstartable_runbook_is_recorded_as_failed(
    store: Store, tmp_path: Path, make_alert: AlertFactory
) -> None:
    failing = FakeExecutor(tmp_path, RunbookResult(False, 2, "failed", "out", False, "failed: no"))
    service = RunService(store, failing, CONFIG, "web1", clock=lambda: NOW)
    auto = CLEAN.model_copy(update={"approval": "auto"})
    service.on_alert(make_alert(), auto, NOW)
    [done] = service.execute_pending(NOW)
    assert (done.state, done.rc) == (RunState.FAILED, 2)

    failing.result = RemediationError("ansible-playbook could not be started (rc 127)")
    service.on_alert(make_alert(starts_at=NOW + 1), auto, NOW + 1)
    [broken] = service.execute_pending(NOW + 1)
    assert (broken.state, broken.rc, broken.output) == (
        RunState.FAILED, None, "ansible-playbook could not be started (rc 127)")  # fmt: skip


def test_verify_marks_cleared_runs_verified_and_lingering_ones_ineffective(
    service: RunService, make_alert: AlertFactory
) -> None:
    auto = CLEAN.model_copy(update={"approval": "auto"})
    a = service.on_alert(make_alert(), auto, NOW)
    b = service.on_alert(make_alert(fingerprint="fp2"), auto, NOW)
    assert a is not None and b is not None
    service.execute_pending(NOW)  # both finish at NOW + 100
    assert service.verify({"fp1", "fp2"}, NOW + 200) == []
    assert [(r.id, r.state) for r in service.verify({"fp2"}, NOW + 300)] == [
        (a.id, RunState.VERIFIED)
    ]
    assert [(r.id, r.state) for r in service.verify({"fp2"}, NOW + 700)] == [
        (b.id, RunState.INEFFECTIVE)]  # fmt: skip


def test_recover_interrupts_running_runs_which_never_run_again(
    service: RunService, store: Store, executor: FakeExecutor, make_alert: AlertFactory
) -> None:
    run = service.on_alert(make_alert(), CLEAN.model_copy(update={"approval": "auto"}), NOW)
    assert run is not None
    store.claim_run(run.id, "web1", NOW)  # the agent crashed mid-run
    [interrupted] = service.recover(NOW + 50)
    assert interrupted.state is RunState.INTERRUPTED
    assert service.execute_pending(NOW + 51) == [] and executor.executed == []
    assert ("web1", "run.interrupt") in [(e.actor, e.action) for e in store.list_audit()]


def test_reject_and_approve_go_through_the_store_exactly_once(
    service: RunService, make_alert: AlertFactory
) -> None:
    run = service.on_alert(make_alert(), CLEAN, NOW)
    assert run is not None
    rejected = service.reject(run.id, "bob", "change freeze", NOW + 1)
    assert (rejected.state, rejected.reason) == (RunState.REJECTED, "change freeze")
    with pytest.raises(ConflictError, match="already rejected by bob"):
        service.approve(run.id, "alice", NOW + 2)


def test_expire_closes_old_approval_windows(service: RunService, make_alert: AlertFactory) -> None:
    run = service.on_alert(make_alert(), CLEAN, NOW)
    assert run is not None
    assert service.expire(NOW + 3599) == []
    assert [r.state for r in service.expire(NOW + 3600)] == [RunState.EXPIRED]


def test_no_second_run_while_one_is_in_flight(
    service: RunService, store: Store, make_alert: AlertFactory
) -> None:
    auto = CLEAN.model_copy(update={"approval": "auto"})
    first = service.on_alert(make_alert(), auto, NOW)
    assert first is not None
    assert service.on_alert(make_alert(starts_at=NOW + 30), auto, NOW + 30) is None
    store.claim_run(first.id, "web1", NOW + 31)
    assert service.on_alert(make_alert(starts_at=NOW + 40), auto, NOW + 40) is None
    assert [r.id for r in store.list_runs()] == [first.id]


def test_after_an_interrupted_run_a_person_decides_even_with_auto_approval(
    service: RunService, store: Store, executor: FakeExecutor, make_alert: AlertFactory
) -> None:
    auto = CLEAN.model_copy(update={"approval": "auto"})
    first = service.on_alert(make_alert(), auto, NOW)
    assert first is not None
    store.claim_run(first.id, "web1", NOW + 1)
    service.recover(NOW + 10)  # the agent died mid-run and restarted
    second = service.on_alert(make_alert(starts_at=NOW + 20), auto, NOW + 20)
    assert second is not None
    assert (second.state, second.expires_at) == (RunState.PENDING_APPROVAL, NOW + 20 + 3600)
    assert service.execute_pending(NOW + 21) == [] and executor.executed == []


def test_a_pending_run_of_a_cleared_alert_expires(
    service: RunService, store: Store, make_alert: AlertFactory
) -> None:
    run = service.on_alert(make_alert(), CLEAN, NOW)
    assert run is not None
    assert service.expire(NOW + 60, cleared={"some-other-fp"}) == []
    (expired,) = service.expire(NOW + 60, cleared={run.fingerprint})
    assert expired.id == run.id and expired.state is RunState.EXPIRED
    with pytest.raises(ConflictError):
        service.approve(run.id, "alice", NOW + 61)


def test_a_failing_run_does_not_stop_the_others(
    store: Store, tmp_path: Path, make_alert: AlertFactory
) -> None:
    class Flaky(FakeExecutor):
        def run(self, run: RemediationRun, timeout: float | None = None) -> RunbookResult:
            self.executed.append(run.id)
            if len(self.executed) == 1:
                raise RuntimeError("ansible-runner blew up")
            return RunbookResult(True, 0, "successful", "ok", True, "done")

    flaky = Flaky(tmp_path)
    service = RunService(store, flaky, CONFIG, "web1", clock=lambda: NOW + 100)
    auto = CLEAN.model_copy(update={"approval": "auto"})
    first = service.on_alert(make_alert(fingerprint="a"), auto, NOW)
    second = service.on_alert(make_alert(fingerprint="b"), auto, NOW)
    assert first is not None and second is not None
    done = service.execute_pending(NOW + 1)
    assert {r.state for r in done} == {RunState.FAILED, RunState.SUCCEEDED}
    assert len(flaky.executed) == 2
    assert service.execute_pending(NOW + 2) == [], "nothing runs twice"


def test_recording_an_outcome_survives_a_database_blip(
    store: Store, executor: FakeExecutor, make_alert: AlertFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import remediation.runs as runs_module

    monkeypatch.setattr(runs_module, "FINISH_BACKOFF", 0.0)
    service = RunService(store, executor, CONFIG, "web1", clock=lambda: NOW + 100)
    run = service.on_alert(make_alert(), CLEAN.model_copy(update={"approval": "auto"}), NOW)
    assert run is not None
    real, calls = store.finish_run, []

    def blip(*args: object) -> RemediationRun:
        calls.append(args)
        if len(calls) < 3:
            raise OSError("database is locked")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "finish_run", blip)
    (done,) = service.execute_pending(NOW + 1)
    assert done.state is RunState.SUCCEEDED and len(calls) == 3
    assert executor.executed == [run.id]


def test_an_approved_run_of_a_cleared_alert_never_starts(
    service: RunService, executor: FakeExecutor, make_alert: AlertFactory
) -> None:
    run = service.on_alert(make_alert(), CLEAN, NOW)
    assert run is not None
    service.approve(run.id, "alice", NOW + 10)
    (expired,) = service.expire(NOW + 20, cleared={run.fingerprint})
    assert expired.state is RunState.EXPIRED
    assert service.execute_pending(NOW + 21) == []
    assert executor.executed == []


AUTO = CLEAN.model_copy(update={"approval": "auto"})


@pytest.mark.parametrize(
    ("policy", "actions", "run", "approvals", "ticket"),
    [
        ("auto", AUTO, True, 0, False),
        ("auto", CLEAN, True, 1, False),  # the rule asks for a person: it gets one
        ("approval", AUTO, True, 1, False),
        ("two_approvers", AUTO, True, 2, False),
        ("two_approvers", CLEAN, True, 2, False),
        ("ticket_only", AUTO, False, 0, True),
        ("ticket_only", RuleActions(ticket=True), False, 0, True),
        ("approval", RuleActions(ticket=True), False, 1, True),  # no runbook: nothing to run
    ],
)
def test_the_stricter_of_rule_and_policy_wins(
    make_alert: AlertFactory,
    policy: str,
    actions: RuleActions,
    run: bool,
    approvals: int,
    ticket: bool,
) -> None:
    decision = decide(make_alert(policy=policy, risk="high"), actions)
    assert (decision.run, decision.approvals, decision.ticket) == (run, approvals, ticket)
    held_back = run and approvals > (0 if actions.approval == "auto" else 1)
    assert bool(decision.why) == (held_back or (policy == "ticket_only" and bool(actions.runbook)))


def test_a_flapping_alert_never_runs_unattended(
    service: RunService, make_alert: AlertFactory
) -> None:
    assert decide(make_alert(policy="auto", flapping=True), AUTO).approvals == 1
    run = service.on_alert(make_alert(policy="auto", flapping=True), AUTO, NOW)
    assert run is not None and run.state is RunState.PENDING_APPROVAL


def test_ticket_only_creates_no_run(service: RunService, make_alert: AlertFactory) -> None:
    assert service.on_alert(make_alert(policy="ticket_only"), AUTO, NOW) is None
    assert service.store.list_runs() == []


def test_two_approvers_must_be_two_different_people(
    service: RunService, make_alert: AlertFactory
) -> None:
    run = service.on_alert(make_alert(policy="two_approvers"), AUTO, NOW)
    assert run is not None and run.approvals_needed == 2
    first = service.approve(run.id, "alice", NOW + 1)
    assert (first.state, first.first_approver, first.approved_by) == (
        RunState.PENDING_APPROVAL, "alice", None)  # fmt: skip
    with pytest.raises(ConflictError, match="alice has approved it, someone else must"):
        service.approve(run.id, "alice", NOW + 2)
    second = service.approve(run.id, "bob", NOW + 3)
    assert (second.state, second.approved_by) == (RunState.APPROVED, "bob")
    with pytest.raises(ConflictError, match="already approved by bob"):
        service.approve(run.id, "carol", NOW + 4)
    audit = [e.action for e in service.store.list_audit()]
    assert audit.count("run.approve_first") == 1 and audit.count("run.approve") == 1
