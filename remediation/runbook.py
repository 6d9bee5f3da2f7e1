"""Runs one remediation runbook with ansible-runner (the only module that imports it).

Each run gets a private data dir `work_dir/<run id>/` with a localhost inventory (local
connection, this Python as interpreter) and an `env/extravars` file written here: every string
in it is tagged `!unsafe`, so Ansible never templates a value, whether it came from agent.yaml
or from an alert's labels. Library failures become RemediationError at this boundary.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.config import RunbookConfig
from agent.errors import RemediationError
from agent.model import RemediationRun

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 64 * 1024
"""The run keeps the last 64 KiB of ansible-playbook's output."""
RUN_ENV = "OPSWATCH_RUN_ID"
"""Set in every process of a run, so a timed-out run's strays can be found and killed."""
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class RunbookResult:
    """What one runbook execution did, as ansible-runner reported it."""

    ok: bool
    rc: int
    status: str
    """ansible-runner's status: successful, failed, timeout or canceled."""
    output: str
    changed: bool
    summary: str
    """One line: the playbook's last message, or why it failed."""
    stats: Mapping[str, int] = field(default_factory=dict)
    """Task counts over all hosts: ok, changed, failures, dark (unreachable), skipped."""

    def record(self) -> str:
        """The text a run keeps: the summary line, a blank line, then the output tail."""
        return f"{self.summary}\n\n{self.output}"


def summary_of(output: str) -> str:
    """The summary line of a run's recorded output (see RunbookResult.record)."""
    return output.split("\n", 1)[0]


class _Unsafe(str):
    """A string Ansible must treat as data (dumped with the `!unsafe` tag)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Unsafe, lambda d, v: d.represent_scalar("!unsafe", str(v), style="'"))


def _unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, Mapping):
        return {str(k): _unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_unsafe(v) for v in value]
    return value


def extravars_yaml(variables: Mapping[str, Any]) -> str:
    """YAML for env/extravars in which every string value is `!unsafe`."""
    for name in variables:
        if not _VAR_NAME.match(name) or name.startswith("ansible_"):
            raise RemediationError(f"runbook variable name {name!r} is not allowed")
    return yaml.dump(_unsafe(dict(variables)), Dumper=_Dumper, sort_keys=True, allow_unicode=True)


def _tail(text: str, limit: int = OUTPUT_LIMIT) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    cut = len(data) - limit
    return f"[… first {cut} bytes cut …]\n" + data[cut:].decode("utf-8", "ignore")


class RunbookExecutor:
    """Executes runbooks from one ansible-runner project folder against this host."""

    def __init__(
        self,
        runbooks_dir: Path,
        runbooks: Mapping[str, RunbookConfig],
        work_dir: Path,
        *,
        keep_artifacts: bool = False,
    ) -> None:
        self.runbooks_dir = Path(runbooks_dir).resolve()
        self.runbooks = dict(runbooks)
        self.work_dir = Path(work_dir)
        self.keep_artifacts = keep_artifacts

    def config(self, name: str) -> RunbookConfig:
        """The configuration of a runbook; RemediationError if it is not configured."""
        try:
            return self.runbooks[name]
        except KeyError:
            known = ", ".join(sorted(self.runbooks)) or "none"
            raise RemediationError(f"unknown runbook '{name}' (configured: {known})") from None

    def playbook(self, name: str) -> Path:
        """The playbook file of a runbook, checked to exist inside the runbooks folder."""
        path = (self.runbooks_dir / self.config(name).playbook).resolve()
        if not path.is_relative_to(self.runbooks_dir) or not path.is_file():
            raise RemediationError(f"runbook '{name}': no playbook {path} in {self.runbooks_dir}")
        return path

    def variables(self, run: RemediationRun) -> dict[str, Any]:
        """The run's variables with the runbook's trusted ones on top (an alert never overrides)."""
        trusted = self.config(run.runbook).vars
        for name in sorted(set(run.variables) & set(trusted)):
            log.warning("run variable %s ignored: the runbook config sets it", name,
                        extra={"run": run.id, "runbook": run.runbook})  # fmt: skip
        return {**run.variables, **trusted}

    def run(self, run: RemediationRun, timeout: float | None = None) -> RunbookResult:
        """Execute the run's runbook now (blocking) and report what happened."""
        playbook = self.playbook(run.runbook)
        limit = timeout if timeout is not None else self.config(run.runbook).timeout
        private = self._prepare(run)
        log.info("runbook starting", extra={"run": run.id, "runbook": run.runbook})
        try:
            result = self._execute(private, playbook, limit, run.id)
        finally:
            if not self.keep_artifacts:
                shutil.rmtree(private, ignore_errors=True)
        if result.status in ("timeout", "canceled"):
            killed = reap(run.id)
            log.warning("runbook timed out", extra={"run": run.id, "strays_killed": killed})
        return result

    def _prepare(self, run: RemediationRun) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", run.id):
            raise RemediationError(f"invalid run id {run.id!r}")
        private = self.work_dir / run.id
        shutil.rmtree(private, ignore_errors=True)
        for sub in ("env", "inventory"):
            (private / sub).mkdir(parents=True, mode=0o700)
        (private / "env" / "extravars").write_text(extravars_yaml(self.variables(run)))
        host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        inventory = {"all": {"hosts": {"localhost": host}}}
        (private / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
        return private

    def _envvars(self, private: Path, run_id: str) -> dict[str, str]:
        # ansible-runner looks for ansible-playbook on PATH: without our bin first it fails
        # in 0 s with rc 127 (docs/runbooks.md).
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        return {
            "PATH": path,
            RUN_ENV: run_id,
            "ANSIBLE_HOME": str(private / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            "LC_ALL": os.environ.get("LC_ALL") or "C.UTF-8",
        }

    def _execute(self, private: Path, playbook: Path, timeout: float, run_id: str) -> RunbookResult:
        import ansible_runner  # late: the CLI builds an executor without ever running one

        try:
            runner = ansible_runner.run(
                private_data_dir=str(private),
                project_dir=str(self.runbooks_dir),
                playbook=str(playbook.relative_to(self.runbooks_dir)),
                ident="run",
                envvars=self._envvars(private, run_id),
                timeout=max(1, math.ceil(timeout)),
                quiet=True,
            )
            return _result(runner, timeout)
        except RemediationError:
            raise
        except Exception as exc:  # ansible-runner raises assorted errors; translate them all
            raise RemediationError(f"ansible-runner failed: {type(exc).__name__}: {exc}") from exc


def reap(run_id: str) -> int:
    """SIGKILL every process of a run still alive; the number killed.

    ansible-runner kills the ansible-playbook process group on timeout, but a module can start
    its own session (the local connection does), which the group kill never reaches.
    """
    needle, killed = f"{RUN_ENV}={run_id}".encode(), 0
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            pid = int(environ.parent.name)
            if pid != os.getpid() and needle in environ.read_bytes().split(b"\0"):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return killed


def _result(runner: Any, timeout: float) -> RunbookResult:
    stats = _stats(runner.stats)
    status, rc = str(runner.status), int(runner.rc if runner.rc is not None else -1)
    if rc == 127 and not stats:
        raise RemediationError("ansible-playbook could not be started (rc 127): is it on PATH?")
    output = _tail(runner.stdout.read())
    summary = _summary(list(runner.events), status, rc, timeout, stats)
    ok = status == "successful" and rc == 0
    changed = stats.get("changed", 0) > 0
    return RunbookResult(ok, rc, status, output, changed, summary, stats)


def _stats(raw: Mapping[str, Mapping[str, int]] | None) -> dict[str, int]:
    keys = ("ok", "changed", "failures", "dark", "skipped")
    return {k: sum((raw or {}).get(k, {}).values()) for k in keys} if raw else {}


def _summary(
    events: list[Mapping[str, Any]], status: str, rc: int, timeout: float, stats: Mapping[str, int]
) -> str:
    if status == "timeout":
        return f"timed out after {timeout:g} s and was killed"
    failed = _last_msg(events, ("runner_on_failed", "runner_on_unreachable"))
    if failed is not None:
        return _one_line(f"failed: {failed}")
    message = _last_msg(events, ("runner_on_ok",))
    if message is not None:
        return _one_line(message)
    counts = " ".join(f"{k}={v}" for k, v in stats.items())
    return f"{status} rc={rc} {counts}".strip()


def _last_msg(events: list[Mapping[str, Any]], kinds: tuple[str, ...]) -> str | None:
    found = None
    for event in events:
        if event.get("event") in kinds:
            msg = event.get("event_data", {}).get("res", {}).get("msg")
            if isinstance(msg, str) and msg:
                found = msg
    return found


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
