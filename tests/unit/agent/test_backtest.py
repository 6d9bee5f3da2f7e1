"""Backtest over fixed synthetic histories: exact counts of what a config would have produced.

Every history is a list of values, one per minute from T0; the replay evaluates every 60 s, so
value i is what evaluation i sees. Thresholds: warning 100, critical 1000 on
`opswatch_path_size_bytes{name="logs"}`. With the shipped matrix and the default medium impact a
warning alert is high risk (P2), a critical one critical risk (P1).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from agent import config
from agent.backtest import (
    BacktestError,
    BacktestReport,
    backtest,
    evaluation_times,
    lookback,
    selectors,
)
from agent.backtest_cli import from_prometheus, load_samples, parse_instant
from agent.cli import main
from agent.model import Sample, make_labels

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
MINUTE = 60.0
OK, BAD, CRIT = 10.0, 500.0, 5000.0

BASE = """
agent: {name: web1}
evaluation: {interval: 60s, retention: 1h}
remediation:
  runbooks: {clean: {playbook: clean_directory.yml}}
rules:
  - name: LogsTooBig
    expr: opswatch_path_size_bytes{name="logs"}
    warning: 100
    critical: 1000
    actions: {ticket: true, runbook: clean, approval: required}
"""


def cfg(extra: str = "", base: str = BASE) -> config.AgentConfig:
    return config.parse(base + extra)


def history(values: Sequence[float], name: str = "logs", metric: str = "opswatch_path_size_bytes",
            start: float = T0) -> list[Sample]:  # fmt: skip
    labels = make_labels({"name": name})
    return [Sample(metric, labels, v, start + MINUTE * i) for i, v in enumerate(values)]


def replay(conf: config.AgentConfig, samples: list[Sample], minutes: int) -> BacktestReport:
    samples.sort(key=lambda s: s.timestamp)
    return backtest(conf, samples, T0, T0 + MINUTE * (minutes - 1))


def counts(report: BacktestReport, rule: str = "LogsTooBig") -> dict[str, Any]:
    return report.rules[rule].to_json()


# ---------------------------------------------------------------------------------------------
# Alerts, tickets and runs


def test_a_rule_firing_twice_makes_two_alerts_two_tickets_and_two_approvals() -> None:
    values = [OK, BAD, BAD, OK, OK, BAD, BAD, BAD, OK, OK]
    report = replay(cfg(), history(values), len(values))
    got = counts(report)
    assert (got["alerts"], got["tickets"], got["occurrences"]) == (2, 2, 0)  # the clear resolves
    assert (got["approvals"], got["automatic_runs"]) == (2, 0)
    assert got["tickets_by_priority"] == {"P2": 2}
    assert got["runs_by_policy"] == {"approval": 2}
    assert (got["firing_at_end"], got["open_tickets_at_end"]) == (0, 0)
    assert (report.evaluations, report.samples) == (10, 10)


def test_an_auto_runbook_counts_automatic_runs_and_no_ticket_without_actions_ticket() -> None:
    conf = cfg(base=BASE.replace("ticket: true, runbook: clean, approval: required",
                                 "runbook: clean, approval: auto"))  # fmt: skip
    values = [BAD, OK, BAD, OK, BAD]
    got = counts(replay(conf, history(values), len(values)))
    assert (got["alerts"], got["automatic_runs"], got["approvals"], got["tickets"]) == (3, 3, 0, 0)


def test_pending_for_too_short_is_no_alert_and_firing_at_the_end_is_reported() -> None:
    conf = cfg(base=BASE.replace("critical: 1000\n", "critical: 1000\n    for: 2m\n"))
    values = [OK, BAD, BAD, OK, BAD, BAD, BAD, BAD]  # 2 bad minutes = 1 min pending: no fire
    got = counts(replay(conf, history(values), len(values)))
    assert (got["alerts"], got["tickets"], got["firing_at_end"], got["open_tickets_at_end"]) == (
        1, 1, 1, 1,
    )  # fmt: skip


def test_no_history_no_alerts_and_every_rule_is_in_the_report() -> None:
    report = backtest(cfg(), [], T0, T0 + 600)
    assert list(report.rules) == ["LogsTooBig"]
    assert report.totals.to_json()["alerts"] == 0
    assert report.evaluations == 11  # the default step is evaluation.interval (60 s)


# ---------------------------------------------------------------------------------------------
# SLA breaches


def test_a_p1_ticket_open_past_two_hours_breaches_its_response_time() -> None:
    values = [CRIT] * 150 + [OK] * 5  # critical for 150 minutes: P1, response due after 2 h
    got = counts(replay(cfg(), history(values), len(values)))
    assert got["tickets_by_priority"] == {"P1": 1}
    assert (got["response_breaches"], got["resolution_breaches"]) == (1, 0)  # 8 h not reached


def test_a_p1_ticket_resolved_within_two_hours_breaches_nothing() -> None:
    values = [CRIT] * 110 + [OK] * 5
    got = counts(replay(cfg(), history(values), len(values)))
    assert (got["tickets"], got["response_breaches"], got["resolution_breaches"]) == (1, 0, 0)


def test_configured_sla_times_are_used_for_resolution_breaches() -> None:
    conf = cfg("risk: {priorities: {P2: {response: 10m, resolution: 30m}}}\n")
    values = [BAD] * 45  # a P2 ticket open 44 minutes, still open at the end
    got = counts(replay(conf, history(values), len(values)))
    assert (got["response_breaches"], got["resolution_breaches"]) == (1, 1)
    assert got["open_tickets_at_end"] == 1


# ---------------------------------------------------------------------------------------------
# Silences, inhibition, flapping


def _silence(start_minute: int, end_minute: int) -> str:
    def iso(minute: int) -> str:
        return datetime.fromtimestamp(T0 + MINUTE * minute, UTC).isoformat()

    return f"""
silences:
  - matchers: ['alertname="LogsTooBig"']
    starts_at: "{iso(start_minute)}"
    ends_at: "{iso(end_minute)}"
    author: alice
    comment: log rotation rework
"""


def test_an_alert_silenced_for_as_long_as_it_fires_starts_nothing() -> None:
    values = [OK, BAD, BAD, BAD, OK, OK]
    got = counts(replay(cfg(_silence(0, 10)), history(values), len(values)))
    assert (got["alerts"], got["suppressed"], got["tickets"], got["approvals"]) == (1, 1, 0, 0)
    assert got["silenced_seconds"] == 3 * MINUTE


def test_an_alert_still_firing_when_its_silence_ends_opens_its_ticket_then() -> None:
    values = [OK, BAD, BAD, BAD, BAD, OK]
    got = counts(replay(cfg(_silence(0, 2)), history(values), len(values)))  # ends at minute 2
    assert (got["alerts"], got["suppressed"], got["tickets"], got["approvals"]) == (1, 0, 1, 1)
    assert got["silenced_seconds"] == 1 * MINUTE  # minute 1 only: minute 2 is the end


INHIBIT = """
  - name: HostDown
    expr: up == 0
    critical: 0
    op: ">="
inhibit_rules:
  - source_matchers: ['alertname="HostDown"']
    target_matchers: ['alertname="LogsTooBig"']
    equal: [host]
"""


def test_an_inhibited_alert_is_counted_as_suppressed_and_the_source_alert_as_alert() -> None:
    values = [BAD, BAD, BAD]
    down = [Sample("up", (), 0.0, T0 + MINUTE * i) for i in range(3)]
    report = replay(cfg(INHIBIT), [*history(values), *down], 3)
    got = counts(report)
    assert (got["alerts"], got["suppressed"], got["tickets"]) == (1, 1, 0)
    assert got["inhibited_seconds"] == 3 * MINUTE
    assert counts(report, "HostDown")["alerts"] == 1
    assert report.totals.alerts == 2


def test_an_alert_going_on_and_off_every_minute_starts_flapping_once() -> None:
    values = [BAD, OK] * 10
    got = counts(replay(cfg(), history(values), len(values)))
    assert (got["alerts"], got["tickets"], got["flapping"]) == (10, 10, 1)


# ---------------------------------------------------------------------------------------------
# Report shape, times, what to fetch


def test_totals_add_up_and_the_json_round_trips() -> None:
    values = [BAD, OK, CRIT, OK]
    other = history([BAD, BAD, OK, OK], name="cache")  # another fingerprint of the same rule
    conf = cfg(base=BASE.replace('{name="logs"}', ""))
    report = replay(conf, [*history(values), *other], 4)
    data = json.loads(json.dumps(report.to_json()))
    assert data["totals"]["alerts"] == 3
    assert data["totals"]["tickets_by_priority"] == {"P1": 1, "P2": 2}
    assert data["rules"]["LogsTooBig"]["tickets"] == 3
    assert (data["start"], data["step"], data["evaluations"]) == (T0, 60.0, 4)


def test_evaluation_times_are_exact_and_bounded() -> None:
    assert evaluation_times(0.0, 0.5, 0.1) == [
        0.0,
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
    ]  # not 0.30000000000000004
    assert evaluation_times(T0 + 0.0004, T0 + 2.0004, 1.0) == [T0, T0 + 1, T0 + 2]
    with pytest.raises(BacktestError, match="before its start"):
        evaluation_times(10.0, 0.0, 1.0)
    with pytest.raises(BacktestError, match="larger step"):
        evaluation_times(0.0, 10_000_000.0, 1.0)


def test_selectors_keep_equality_matchers_and_lookback_covers_the_longest_window() -> None:
    conf = cfg(base="""
evaluation: {interval: 15s, retention: 1h}
rules:
  - {name: A, expr: 'avg(node_load1{host="a b\\"c"}[10m])', warning: 1}
  - {name: B, expr: 'rate(node_network_receive_bytes_total{device=~"eth.*"}[5m]) > 0', warning: 1}
  - {name: C, expr: 'x{a="1"} / x{a="2"}', warning: 1}
  - {name: D, expr: 'time_to_threshold(y[2h], 0)', op: "<", warning: 60}
""")  # fmt: skip
    assert selectors(conf.rules) == [
        'node_load1{host="a b\\"c"}',
        "node_network_receive_bytes_total",  # regexes are left to our own evaluator
        "x",  # two different matcher sets: fetch the name whole
        "y",
    ]
    assert lookback(conf, 15.0) == 3600.0  # the 2 h window, capped at the retention
    assert lookback(cfg(), 60.0) == 60.0  # only instant selectors: one step


# ---------------------------------------------------------------------------------------------
# History sources


def prometheus(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def matrix(*series: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": list(series)}}


def test_from_prometheus_reads_query_range_into_time_ordered_samples() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        assert request.url.path == "/prom/api/v1/query_range"
        return httpx.Response(200, json=matrix(
            {"metric": {"__name__": "up", "job": "a"}, "values": [[T0 + 15, "0"], [T0, "1"]]},
            {"metric": {"__name__": "up", "job": "b"}, "values": [[T0 + 7, "NaN"]]},
        ))  # fmt: skip

    found = from_prometheus("http://127.0.0.1:1/prom", ["up"], T0, T0 + 15, 15.0,
                            transport=prometheus(handler))  # fmt: skip
    assert seen == [{"query": "up", "start": f"{T0:.3f}", "end": f"{T0 + 15:.3f}", "step": "15.0"}]
    assert [(s.timestamp, s.label("job")) for s in found] == [(T0, "a"), (T0 + 7, "b"),
                                                             (T0 + 15, "a")]  # fmt: skip
    assert found[0] == Sample("up", (("job", "a"),), 1.0, T0)


def test_from_prometheus_cuts_long_ranges_into_bounded_requests() -> None:
    starts: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        starts.append(float(request.url.params["start"]))
        return httpx.Response(200, json=matrix())

    from_prometheus("http://p", ["a", "b"], 0.0, 25_000.0, 1.0, transport=prometheus(handler))
    assert starts == [0.0, 10_000.0, 20_000.0] * 2
    with pytest.raises(BacktestError, match="needs 6 requests \\(limit 5\\)"):
        from_prometheus("http://p", ["a", "b"], 0.0, 25_000.0, 1.0, max_requests=5,
                        transport=prometheus(handler))  # fmt: skip


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(400, json={"status": "error", "errorType": "bad_data",
                                   "error": "parse error"}),
         "refused 'up' \\(HTTP 400\\): bad_data: parse error"),
        (httpx.Response(502, text="<html>Bad Gateway</html>"),
         "answered HTTP 502 with something that is not JSON: '<html>Bad Gateway</html>'"),
        (httpx.Response(200, json=["not", "an", "answer"]), "unexpected JSON"),
        (httpx.Response(200, json={"status": "success", "data": {"resultType": "vector"}}),
         "no range vector"),
        (httpx.Response(200, json=matrix({"metric": {}, "values": [[1, "2"]]})),
         "a series we cannot read"),
    ],
)  # fmt: skip
def test_from_prometheus_says_clearly_what_went_wrong(
    response: httpx.Response, message: str
) -> None:
    with pytest.raises(BacktestError, match=message):
        from_prometheus("http://p", ["up"], 0, 10, 10, transport=prometheus(lambda _r: response))


def test_from_prometheus_reports_an_unreachable_server() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with pytest.raises(BacktestError, match=r"cannot reach Prometheus at http://p.*refused"):
        from_prometheus("http://p", ["up"], 0, 10, 10, transport=prometheus(refuse))


def test_load_samples_reads_arrays_and_json_lines_and_names_the_bad_sample(tmp_path: Path) -> None:
    array = tmp_path / "a.json"
    array.write_text(json.dumps([
        {"name": "up", "labels": {"job": "x"}, "value": 1, "timestamp": T0 + 60},
        {"name": "up", "labels": {"job": "x"}, "value": 0, "timestamp": "2023-11-14T22:13:20Z"},
    ]))  # fmt: skip
    assert [(s.timestamp, s.value) for s in load_samples(array)] == [(T0, 0.0), (T0 + 60, 1.0)]
    lines = tmp_path / "b.jsonl"
    lines.write_text('{"name": "up", "value": 1, "timestamp": 5}\n\n'
                     '{"name": "up", "value": 2, "timestamp": 3}\n')  # fmt: skip
    assert [s.timestamp for s in load_samples(lines)] == [3.0, 5.0]
    lines.write_text('{"name": "up", "value": "1", "timestamp": 5}\n')
    with pytest.raises(BacktestError, match=r"b\.jsonl: sample 0: 'value' must be a number"):
        load_samples(lines)
    lines.write_text('{"name": "up", "value": 1}\n')
    with pytest.raises(BacktestError, match="'timestamp' is missing"):
        load_samples(lines)
    lines.write_text("{oops")
    with pytest.raises(BacktestError, match="not JSON"):
        load_samples(lines)


def test_parse_instant_takes_now_relative_epoch_and_iso_times() -> None:
    assert parse_instant("now", T0) == T0
    assert parse_instant("-6h", T0) == T0 - 6 * 3600
    assert parse_instant("1700000000.5", T0) == T0 + 0.5
    assert parse_instant("2023-11-14T22:13:20", T0) == T0  # no offset: UTC
    assert parse_instant("2023-11-15T00:13:20+02:00", T0) == T0
    with pytest.raises(BacktestError, match="--from: 'yesterday' is not 'now', '-6h'"):
        parse_instant("yesterday", T0, "--from")
    with pytest.raises(BacktestError, match="is not epoch seconds or ISO 8601"):
        parse_instant("-6h")  # a file's timestamps are absolute


# ---------------------------------------------------------------------------------------------
# The command (in-process)


def test_the_command_replays_a_samples_file_and_prints_json_and_a_table(tmp_path: Path) -> None:
    conf = tmp_path / "agent.yaml"
    conf.write_text(BASE)
    recorded = tmp_path / "samples.json"
    rows = [{"name": s.name, "labels": dict(s.labels), "value": s.value, "timestamp": s.timestamp}
            for s in history([OK, BAD, BAD, OK, BAD, OK])]  # fmt: skip
    recorded.write_text(json.dumps(rows))
    args = ["rules", "backtest", "-c", str(conf), "--samples", str(recorded),
            "--from", str(T0), "--to", str(T0 + 300)]  # fmt: skip
    done = CliRunner().invoke(main, [*args, "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)
    assert (data["rules"]["LogsTooBig"]["alerts"], data["totals"]["approvals"]) == (2, 2)
    table = CliRunner().invoke(main, [*args, "--step", "1m"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "6 evaluations, 6 samples" in table.output
    assert "LogsTooBig" in table.output


def test_the_command_wants_exactly_one_source(tmp_path: Path) -> None:
    conf = tmp_path / "agent.yaml"
    conf.write_text(BASE)
    done = CliRunner().invoke(main, ["rules", "backtest", "-c", str(conf)])
    assert done.exit_code == 2
    assert "exactly one of --prometheus URL, --agent URL, --samples FILE" in done.output
    bad_step = ["rules", "backtest", "-c", str(conf), "--prometheus", "http://127.0.0.1:1",
                "--step", "soon"]  # fmt: skip
    done = CliRunner().invoke(main, bad_step)
    assert done.exit_code == 1
    assert "--step: invalid duration 'soon'" in done.output
