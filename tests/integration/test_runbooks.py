"""The shipped runbooks, run for real by ansible-runner against localhost.

Untrusted text is attacked with `{{ lookup('pipe','touch $OPSWATCH_TEST_MARKER') }}`: if Ansible
ever templated it, the marker file would appear (the Jinja has no slash, so it can also be a
file or directory name).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import runbooks
from agent.config import RemediationSection, RuleActions, RunbookConfig
from agent.model import Alert, AlertState, Level, RemediationRun, RunState, make_labels
from agent.store import Store
from remediation.runbook import RunbookExecutor, RunbookResult
from remediation.runs import RunService

pytestmark = pytest.mark.integration

EVIL = "{{ lookup('pipe','touch $OPSWATCH_TEST_MARKER') }}"
DAY = 86400.0
FIXTURES = Path(__file__).parent / "fixtures" / "runbooks"


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "PWNED"
    monkeypatch.setenv("OPSWATCH_TEST_MARKER", str(path))
    yield path
    assert not path.exists(), "Ansible templated untrusted text: the marker file was created"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


def old_file(path: Path, days: float = 30, content: str = "x" * 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))
    return path


def executor(tmp_path: Path, root: Path, **clean_vars: object) -> RunbookExecutor:
    clean = {"roots": [str(root)], "older_than_days": 7, **clean_vars}
    configs = {
        "clean_directory": RunbookConfig(playbook="clean_directory.yml", vars=clean),
        "restart_service": RunbookConfig(playbook="restart_service.yml"),
    }
    return RunbookExecutor(runbooks.default_dir(), configs, tmp_path / "work")


def a_run(runbook: str, **variables: str) -> RemediationRun:
    return RemediationRun(
        id=f"it{time.monotonic_ns() % 10**10}", fingerprint="fp1", rule="r", runbook=runbook,
        target="localhost", variables=variables, state=RunState.RUNNING, agent="web1",
        created_at=0, updated_at=0,
    )  # fmt: skip


def clean(tmp_path: Path, root: Path, path: Path | str, **clean_vars: object) -> RunbookResult:
    return executor(tmp_path, root, **clean_vars).run(a_run("clean_directory", path=str(path)))


def test_removes_only_old_regular_files_inside_the_root(tmp_path: Path, root: Path) -> None:
    outside = old_file(tmp_path / "outside" / "precious.log")
    old = [old_file(root / "a.log"), old_file(root / "sub" / "b.log")]
    young = old_file(root / "young.log", days=1)
    (root / "link-out.log").symlink_to(outside)
    (root / "dir-out").symlink_to(outside.parent, target_is_directory=True)

    result = clean(tmp_path, root, root)

    assert (result.ok, result.changed, result.rc, result.status) == (True, True, 0, "successful")
    assert result.summary == f"removed 2 files older than 7 days in {root} (2.0 KiB freed)"
    assert not any(p.exists() for p in old)
    assert young.exists() and outside.exists() and (root / "link-out.log").is_symlink()
    assert "changed: [localhost]" in result.output


def test_pattern_limits_what_is_removed(tmp_path: Path, root: Path) -> None:
    log, keep = old_file(root / "app.log"), old_file(root / "app.conf")
    result = clean(tmp_path, root, root, pattern="*.log")
    assert result.ok and not log.exists() and keep.exists()


def test_nothing_old_is_ok_and_unchanged(tmp_path: Path, root: Path) -> None:
    old_file(root / "young.log", days=1)
    result = clean(tmp_path, root, root)
    assert (result.ok, result.changed) == (True, False)
    assert result.summary.startswith(f"nothing to clean in {root}")


@pytest.mark.parametrize("where", ["outside", "parent", "symlink"])
def test_refuses_directories_outside_the_roots(tmp_path: Path, root: Path, where: str) -> None:
    victim = old_file(tmp_path / "outside" / "precious.log")
    target = {"outside": victim.parent, "parent": tmp_path, "symlink": root / "escape"}[where]
    if where == "symlink":
        target.symlink_to(victim.parent, target_is_directory=True)

    result = clean(tmp_path, root, target)

    assert (result.ok, result.changed, result.status) == (False, False, "failed")
    assert result.summary.startswith(f"failed: refusing to clean {target.resolve()}: ")
    assert ("parent of the root" in result.summary) == (where == "parent")
    assert victim.exists()


def test_a_jinja_file_name_is_removed_as_data(tmp_path: Path, root: Path, marker: Path) -> None:
    evil = old_file(root / f"{EVIL}.log")
    result = clean(tmp_path, root, root)
    assert result.ok and result.summary.startswith("removed 1 files")
    assert not evil.exists()


def test_a_jinja_directory_name_in_the_path_variable_is_not_templated(
    tmp_path: Path, root: Path, marker: Path
) -> None:
    evil_dir = root / EVIL
    old = old_file(evil_dir / "old.log")
    result = clean(tmp_path, root, evil_dir)
    assert result.ok, result.summary
    assert result.summary == f"removed 1 files older than 7 days in {evil_dir} (1000 B freed)"
    assert not old.exists()


def test_compress_mode_gzips_old_files_in_place(tmp_path: Path, root: Path) -> None:
    old = old_file(root / "big.log", content="line\n" * 10_000)
    mtime = old.stat().st_mtime
    result = clean(tmp_path, root, root, mode="compress")
    packed = root / "big.log.gz"
    assert result.ok and result.summary.startswith("compressed 1 files")
    assert not old.exists() and packed.stat().st_mtime == pytest.approx(mtime, abs=1)
    assert gzip.decompress(packed.read_bytes()) == b"line\n" * 10_000
    again = clean(tmp_path, root, root, mode="compress")  # never gzips a .gz again
    assert (again.ok, again.changed) == (True, False)


def test_restart_service_says_clearly_that_systemd_is_not_running(
    tmp_path: Path, root: Path
) -> None:
    assert not Path("/run/systemd/system").exists(), "this test expects a host without systemd"
    result = executor(tmp_path, root).run(a_run("restart_service", service="nginx"))
    assert (result.ok, result.rc) == (False, 2)
    assert result.summary == "failed: systemd is not running on this host; cannot restart nginx"


def test_restart_service_refuses_a_unit_name_that_is_not_one(
    tmp_path: Path, root: Path, marker: Path
) -> None:
    result = executor(tmp_path, root).run(a_run("restart_service", service=f"-x {EVIL}"))
    assert not result.ok
    assert result.summary == f"failed: not a systemd unit name: -x {EVIL}"


def test_a_runbook_past_its_timeout_is_killed(tmp_path: Path) -> None:
    seconds = "61.4142"  # unique, so its process can be looked for afterwards
    slow = {"slow": RunbookConfig(playbook="slow.yml", vars={"seconds": seconds}, timeout=3)}
    started = time.monotonic()
    result = RunbookExecutor(FIXTURES, slow, tmp_path / "work").run(a_run("slow"))
    took = time.monotonic() - started
    assert (result.ok, result.status, result.rc) == (False, "timeout", 254)
    assert result.summary == "timed out after 3 s and was killed"
    assert took < 20
    assert _gone(seconds.encode()), "the playbook's sleep survived the timeout"


def _gone(needle: bytes, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait  # SIGKILL is delivered asynchronously
    while time.monotonic() < deadline:
        alive = []
        for path in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                alive.append(needle in path.read_bytes())
            except OSError:
                continue
        if not any(alive):
            return True
        time.sleep(0.1)
    return False


def test_alert_to_cleaned_directory_through_the_run_service(tmp_path: Path, root: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'opswatch.db'}", agent="web1")
    store.migrate()
    service = RunService(store, executor(tmp_path, root), RemediationSection(), "web1")
    old = old_file(root / "spool" / "old.log")
    now = time.time()
    alert = Alert(
        fingerprint="fp1", rule="SpoolFull", state=AlertState.FIRING, level=Level.CRITICAL,
        labels=make_labels({"host": "web1", "dir": str(root / "spool")}), annotations=(),
        value=97.0, starts_at=now - 60, threshold=95.0,
    )  # fmt: skip
    actions = RuleActions(runbook="clean_directory", approval="required", vars={"path": "{dir}"})
    run = service.on_alert(alert, actions, now)
    assert run is not None and service.execute_pending(now) == []
    service.approve(run.id, "alice", now + 1)

    [done] = service.execute_pending(now + 2)

    assert (done.state, done.rc, done.approved_by) == (RunState.SUCCEEDED, 0, "alice")
    assert done.output.startswith(f"removed 1 files older than 7 days in {root / 'spool'}")
    assert not old.exists()
    assert not (tmp_path / "work" / run.id).exists()  # private data dir cleaned up


def _clean_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The runbook's module, imported from the shipped project as Ansible would run it."""
    path = runbooks.default_dir() / "library" / "opswatch_clean_directory.py"
    spec = importlib.util.spec_from_file_location("opswatch_clean_directory", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_a_directory_swapped_for_a_symlink_after_the_check_is_not_followed(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the check alone leaves open: the path is checked, then a directory inside
    the root becomes a symlink to elsewhere before the walk starts."""
    module = _clean_module(monkeypatch)
    victim = old_file(tmp_path / "elsewhere" / "deep" / "precious.log")
    (root / "sub" / "deep").mkdir(parents=True)
    checked = module.resolve_target

    def check_then_swap(path: str, roots: list[str]) -> tuple[str, str]:
        found = checked(path, roots)
        shutil.rmtree(root / "sub")
        (root / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        return found

    monkeypatch.setattr(module, "resolve_target", check_then_swap)
    params = {"path": str(root / "sub" / "deep"), "roots": [str(root)], "older_than_days": 7.0,
              "mode": "remove", "pattern": "*", "recurse": True}  # fmt: skip
    with pytest.raises(module.Refused, match="changed while being opened"):
        module.clean(params, False, time.time())
    assert victim.exists()
