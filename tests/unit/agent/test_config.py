"""agent.yaml validation: every problem at once, with its path, line and a did-you-mean hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent import config
from agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]

BAD = """\
agent:
  name: web1
  listen: "localhost"
collectors:
  cpu: {intervall: 5s}
  paths:
    watch:
      - {name: logs, path: /var/log, recursve: true}
rules:
  - name: ok_rule
    expr: node_load1
    warning: 1
  - name: bad_levels
    expr: node_load1
    warning: 5
    critical: 2
  - name: bad_for
    expr: node_load1
    critical: 1
    for: 5x
  - name: bad_expr
    expr: "rate(node_cpu_seconds_total[5m]"
    critical: 1
"""


def problems(text: str) -> dict[str, tuple[str, int | None]]:
    with pytest.raises(ConfigError) as info:
        config.parse(text)
    return {p.path: (p.message, p.line) for p in info.value.problems}


def test_every_problem_is_listed_with_path_and_line() -> None:
    found = problems(BAD)
    assert found["agent.listen"] == ("expected HOST:PORT, got 'localhost'", 3)
    assert found["collectors.cpu.intervall"] == ("unknown key (did you mean 'interval'?)", 5)
    assert (
        found["collectors.paths.watch[0].recursve"][0] == "unknown key (did you mean 'recursive'?)"
    )
    assert found["collectors.paths.watch[0].recursve"][1] == 8
    assert found["rules[1]"][0].startswith("info, warning and critical must grow")
    assert found["rules[1]"][1] == 13
    assert found["rules[2].for"] == ("invalid duration '5x'", 20)
    assert "rules[3].expr" in found
    assert found["rules[3].expr"][1] == 22
    assert len(found) == 6


def test_problem_renders_like_the_documentation() -> None:
    with pytest.raises(ConfigError) as info:
        config.parse(BAD)
    assert "rules[2].for: invalid duration '5x' (line 20)" in str(info.value).splitlines()


def test_unknown_key_without_a_close_match_lists_the_valid_ones() -> None:
    found = problems("evaluation: {zzz: 1}\n")
    message, line = found["evaluation.zzz"]
    assert message == "unknown key; expected one of: interval, retention"
    assert line == 1


def test_cross_references_are_checked() -> None:
    text = """\
rules:
  - name: a
    expr: node_load1
    warning: 1
    actions: {runbook: clean_directroy}
  - name: a
    expr: node_load1
    warning: 1
remediation:
  runbooks:
    clean_directory: {playbook: clean_directory.yml}
"""
    found = problems(text)
    assert found["rules[0].actions.runbook"] == (
        "unknown runbook 'clean_directroy' (did you mean 'clean_directory'?)",
        5,
    )
    assert found["rules[1].name"] == ("duplicate rule name 'a'", 6)


def test_yaml_syntax_error_has_a_line() -> None:
    found = problems("agent:\n  name: [unclosed\n")
    ((message, line),) = found.values()
    assert message.startswith("not valid YAML")
    assert line is not None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("2d", 172800.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert config.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"), [("100", 100), ("1KiB", 1024), ("2G", 2e9), ("1.5MiB", 1572864)]
)
def test_sizes(text: str, size: float) -> None:
    assert config.parse_size(text) == size


def test_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSWATCH_TEST_DB", "postgresql://u:s3cret@db/x")
    cfg = config.parse("database: {url: '${OPSWATCH_TEST_DB}'}\n")
    assert cfg.database_url == "postgresql://u:s3cret@db/x"
    assert "s3cret" not in repr(cfg)
    assert "s3cret" not in cfg.model_dump_json()


def test_missing_environment_variable_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSWATCH_NOPE", raising=False)
    found = problems("database: {url: '${OPSWATCH_NOPE}'}\n")
    assert found["database.url"] == ("environment variable OPSWATCH_NOPE is not set", 1)


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("sqlite:///x.db\n")
    cfg = config.parse(f"database: {{url_file: {secret}}}\n")
    assert cfg.database_url == "sqlite:///x.db"


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("agent: {state_dir: st}\n")
    cfg = config.load(path)
    assert cfg.agent.state_dir == tmp_path / "st"
    assert cfg.database_url == f"sqlite:///{tmp_path / 'st' / 'opswatch.db'}"


def test_the_shipped_agent_yaml_is_valid() -> None:
    cfg = config.load(REPO / "agent.yaml")
    names = {r.name for r in cfg.rules}
    assert {
        "FilesystemAlmostFull",
        "MemoryPressure",
        "SustainedLoad",
        "WatchedProcessDown",
        "LogDirectoryOverLimit",
    } <= names
    assert cfg.agent.listen_port == config.DEFAULT_PORT


def test_schema_is_json_and_names_the_sections() -> None:
    schema = json.loads(json.dumps(config.json_schema()))
    sections = {"agent", "collectors", "rules", "event_rules", "remediation", "risk", "silences",
                "inhibit_rules", "assets", "snmp", "traps", "api"}  # fmt: skip
    assert set(schema["properties"]) >= sections
    rule = schema["$defs"]["RuleConfig"]
    assert "for" in rule["properties"]
    assert rule["additionalProperties"] is False


def test_secret_values_lists_secrets_and_url_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSWATCH_TEST_DB", "postgresql+psycopg://ops:pa55word@db/x")
    cfg = config.parse("database: {url: '${OPSWATCH_TEST_DB}'}\n")
    assert "pa55word" in cfg.secret_values()
