"""What the executor hands to Ansible: which variables, tagged how (no ansible run here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import runbooks
from agent.config import RunbookConfig
from agent.errors import RemediationError
from agent.model import RemediationRun, RunState
from remediation.runbook import RunbookExecutor, RunbookResult, extravars_yaml, summary_of

EVIL = "{{ lookup('pipe','touch /tmp/pwned') }}"


class _Tagged(yaml.SafeLoader):
    pass


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> tuple[str, Any]:
    assert isinstance(node, yaml.ScalarNode)
    return ("UNSAFE", loader.construct_scalar(node))


_Tagged.add_constructor("!unsafe", _tagged)


def run(runbook: str = "clean_directory", **variables: str) -> RemediationRun:
    return RemediationRun(
        id="a1b2c3d4e5f6", fingerprint="fp1", rule="r", runbook=runbook, target="web1",
        variables=variables, state=RunState.RUNNING, agent="web1", created_at=0, updated_at=0,
    )  # fmt: skip


@pytest.fixture
def executor(tmp_path: Path) -> RunbookExecutor:
    config = RunbookConfig(
        playbook="clean_directory.yml", vars={"roots": ["/var/tmp"], "older_than_days": 7}
    )
    return RunbookExecutor(runbooks.default_dir(), {"clean_directory": config}, tmp_path)


def test_every_string_is_tagged_unsafe_numbers_stay_numbers() -> None:
    text = extravars_yaml({"path": EVIL, "roots": ["/var/tmp"], "older_than_days": 7})
    loaded: Any = yaml.load(text, Loader=_Tagged)
    assert loaded == {
        "path": ("UNSAFE", EVIL), "roots": [("UNSAFE", "/var/tmp")], "older_than_days": 7
    }  # fmt: skip


@pytest.mark.parametrize("name", ["ansible_connection", "ansible_python_interpreter", "a-b", ""])
def test_variable_names_that_could_steer_ansible_are_refused(name: str) -> None:
    with pytest.raises(RemediationError, match="is not allowed"):
        extravars_yaml({name: "x"})


def test_trusted_runbook_vars_win_over_alert_derived_ones(executor: RunbookExecutor) -> None:
    merged = executor.variables(run(path="/srv", roots="/"))
    assert merged == {"path": "/srv", "roots": ["/var/tmp"], "older_than_days": 7}


def test_private_data_dir_holds_inventory_and_tagged_extravars(
    executor: RunbookExecutor, tmp_path: Path
) -> None:
    private = executor._prepare(run(path=EVIL))
    assert private == tmp_path / "a1b2c3d4e5f6"
    extravars: Any = yaml.load((private / "env" / "extravars").read_text(), Loader=_Tagged)
    assert extravars["path"] == ("UNSAFE", EVIL)
    inventory = yaml.safe_load((private / "inventory" / "hosts.yml").read_text())
    assert inventory["all"]["hosts"]["localhost"]["ansible_connection"] == "local"


def test_unknown_runbook_and_missing_playbook_are_clear_errors(tmp_path: Path) -> None:
    executor = RunbookExecutor(
        runbooks.default_dir(),
        {
            "escape": RunbookConfig(playbook="../../etc/passwd"),
            "gone": RunbookConfig(playbook="x.yml"),
        },
        tmp_path,
    )
    with pytest.raises(
        RemediationError, match="unknown runbook 'nope' \\(configured: escape, gone\\)"
    ):
        executor.playbook("nope")
    for name in ("escape", "gone"):
        with pytest.raises(RemediationError, match=f"runbook '{name}': no playbook"):
            executor.playbook(name)


def test_shipped_runbooks_exist() -> None:
    names = sorted(p.name for p in runbooks.default_dir().glob("*.yml"))
    assert names == ["clean_directory.yml", "restart_service.yml"]


def test_recorded_output_starts_with_the_summary_line() -> None:
    result = RunbookResult(True, 0, "successful", "PLAY [x]\nok", True, "removed 3 files")
    assert summary_of(result.record()) == "removed 3 files"
