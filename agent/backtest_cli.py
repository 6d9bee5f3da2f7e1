"""`opswatch rules backtest`: fetch history, replay it through agent.yaml, print the counts.

History comes from Prometheus' HTTP API (`query_range`; this is the only module of the agent
that speaks to Prometheus, so httpx is imported here) or from a JSON file of samples. The
replay itself is `agent.backtest.backtest`, pure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx
from rich import box
from rich.table import Table

from agent.backtest import (
    BacktestError,
    BacktestReport,
    RuleCounts,
    backtest,
    evaluation_times,
    lookback,
    selectors,
)
from agent.cli_common import (
    config_option,
    console,
    json_option,
    load_config,
    open_state,
    print_json,
)
from agent.config import AgentConfig, parse_duration
from agent.model import Sample, make_labels

MAX_POINTS_PER_QUERY = 10_000
"""Prometheus refuses a query_range of more than 11,000 points per series."""


def from_prometheus(
    url: str,
    queries: Sequence[str],
    start: float,
    end: float,
    step: float,
    *,
    max_requests: int = 500,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> list[Sample]:
    """Every series of `queries` between `start` and `end` at `step`, via query_range."""
    windows = _windows(start, end, step)
    needed = len(windows) * len(queries)
    if needed > max_requests:
        raise BacktestError(
            f"fetching this range needs {needed} requests (limit {max_requests}): "
            "shorten the time range or use a larger step"
        )
    try:
        with httpx.Client(base_url=url, timeout=timeout, transport=transport) as client:
            found = [s for q in queries for w in windows for s in _query_range(client, q, w, step)]
    except httpx.InvalidURL as exc:
        raise BacktestError(f"--prometheus {url!r} is not a URL: {exc}") from None
    found.sort(key=lambda s: s.timestamp)
    return found


def _windows(start: float, end: float, step: float) -> list[tuple[float, float]]:
    """[start, end] cut into query_range calls of at most MAX_POINTS_PER_QUERY points."""
    times = evaluation_times(start, end, step)
    chunks = [
        times[i : i + MAX_POINTS_PER_QUERY] for i in range(0, len(times), MAX_POINTS_PER_QUERY)
    ]
    return [(chunk[0], chunk[-1]) for chunk in chunks]


def _query_range(
    client: httpx.Client, query: str, window: tuple[float, float], step: float
) -> list[Sample]:
    params = {"query": query, "start": f"{window[0]:.3f}", "end": f"{window[1]:.3f}",
              "step": repr(float(step))}  # fmt: skip
    try:
        response = client.get("/api/v1/query_range", params=params)
    except httpx.HTTPError as exc:
        raise BacktestError(f"cannot reach Prometheus at {client.base_url}: {exc}") from None
    data = _answer(response, query)
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise BacktestError(f"Prometheus answered {query!r} with no range vector: {data!r:.200}")
    return [s for series in data.get("result", []) for s in _series_samples(series)]


def _answer(response: httpx.Response, query: str) -> Any:
    """The `data` of a Prometheus API answer, or a BacktestError saying what went wrong."""
    where = f"Prometheus at {response.request.url.copy_with(query=None)}"
    try:
        body = response.json()
    except ValueError:
        raise BacktestError(
            f"{where} answered HTTP {response.status_code} with something that is not JSON: "
            f"{response.text[:200]!r}"
        ) from None
    if not isinstance(body, dict):
        raise BacktestError(f"{where} answered with unexpected JSON: {body!r:.200}")
    if body.get("status") != "success":
        kind, text = body.get("errorType", "error"), body.get("error", "no error text")
        raise BacktestError(
            f"{where} refused {query!r} (HTTP {response.status_code}): {kind}: {text}"
        )
    return body.get("data")


def _series_samples(series: Any) -> list[Sample]:
    try:
        metric = dict(series["metric"])
        name = metric.pop("__name__")
        labels = make_labels(metric)
        return [Sample(name, labels, float(v), float(t)) for t, v in series["values"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise BacktestError(f"Prometheus sent a series we cannot read: {exc!r}") from None


# ---------------------------------------------------------------------------------------------
# History from a file, and times as people write them


def from_agent(url: str, names: Sequence[str], *, transport: Any = None) -> list[Sample]:
    """The history a running agent retains in memory (`GET /api/v1/history`), time-ordered."""
    base = url.rstrip("/") + "/api/v1/history"
    try:
        with httpx.Client(transport=transport, timeout=60) as client:
            response = client.get(base, params={"names": ",".join(names)})
    except httpx.HTTPError as exc:
        raise BacktestError(f"cannot reach the agent at {url}: {exc}") from None
    if response.status_code != 200:
        raise BacktestError(
            f"the agent at {url} answered {response.status_code}: {response.text[:200]}"
        )
    try:
        rows = response.json()
    except ValueError:
        raise BacktestError(f"the agent at {url} did not answer JSON") from None
    found = [
        Sample(row["name"], make_labels(row["labels"]), float(v), float(t))
        for row in rows for t, v in row["points"]
    ]  # fmt: skip
    found.sort(key=lambda s: s.timestamp)
    return found


def load_samples(path: Path) -> list[Sample]:
    """Samples from a JSON array (or JSON Lines) of {name, labels, value, timestamp}."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BacktestError(f"cannot read {path}: {exc.strerror}") from None
    try:
        rows = _rows(text)
    except ValueError as exc:
        raise BacktestError(f"{path}: not JSON: {exc}") from None
    found = [_file_sample(row, f"{path}: sample {i}") for i, row in enumerate(rows)]
    found.sort(key=lambda s: s.timestamp)
    return found


def _rows(text: str) -> list[Any]:
    if text.lstrip().startswith("["):
        rows = json.loads(text)
        return rows if isinstance(rows, list) else [rows]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _file_sample(row: Any, where: str) -> Sample:
    if not isinstance(row, dict):
        raise BacktestError(f"{where}: expected an object, got {type(row).__name__}")
    name, labels, value = row.get("name"), row.get("labels", {}), row.get("value")
    if not isinstance(name, str) or not name:
        raise BacktestError(f"{where}: 'name' must be a metric name")
    if not isinstance(labels, dict):
        raise BacktestError(f"{where}: 'labels' must be an object")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BacktestError(f"{where}: 'value' must be a number")
    if "timestamp" not in row:
        raise BacktestError(f"{where}: 'timestamp' is missing (epoch seconds or ISO 8601)")
    return Sample(name, make_labels(labels), float(value), _timestamp(row["timestamp"], where))


def _timestamp(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return parse_instant(value, what=where)
    raise BacktestError(f"{where}: 'timestamp' must be epoch seconds or ISO 8601")


def parse_instant(text: str, now: float | None = None, what: str = "time") -> float:
    """`now`, `-6h` (before now), epoch seconds or ISO 8601 (UTC if no offset) → epoch seconds.

    Without `now`, only absolute times are accepted (as in a samples file).
    """
    try:
        return _instant(text.strip(), now)
    except ValueError:
        relative = "'now', '-6h', " if now is not None else ""
        raise BacktestError(
            f"{what}: {text!r} is not {relative}epoch seconds or ISO 8601"
        ) from None


def _instant(value: str, now: float | None) -> float:
    if now is not None and value == "now":
        return now
    if now is not None and value.startswith("-"):
        return now - parse_duration(value[1:])
    if value.replace(".", "", 1).isdigit():
        return float(value)
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


# ---------------------------------------------------------------------------------------------
# The command


@click.command("backtest")
@config_option
@click.option(
    "--prometheus",
    "prometheus_url",
    metavar="URL",
    help="Read history from this Prometheus (e.g. http://127.0.0.1:9090).",
)
@click.option(
    "--agent",
    "agent_url",
    metavar="URL",
    help="Read the history a running agent keeps in memory (e.g. http://127.0.0.1:10790).",
)
@click.option(
    "--samples",
    "samples_file",
    help="Read history from a JSON file of samples.",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
)
@click.option(
    "--from",
    "start_text",
    default="-6h",
    show_default=True,
    help="Start: ISO 8601 (UTC if no offset), epoch seconds, or -6h (before now).",
)
@click.option(
    "--to",
    "end_text",
    default="now",
    show_default=True,
    help="End: ISO 8601, epoch seconds, -10m or now.",
)
@click.option(
    "--step",
    "step_text",
    default=None,
    help="Evaluation step, e.g. 15s (default: evaluation.interval).",
)
@click.option(
    "--stored-silences",
    is_flag=True,
    help="Also apply the silences in the state store (opswatch silences add).",
)
@json_option  # fmt: skip
def backtest_command(
    config_path: Path, prometheus_url: str | None, agent_url: str | None,
    samples_file: Path | None, start_text: str, end_text: str, step_text: str | None,
    stored_silences: bool, as_json: bool,
) -> None:  # fmt: skip
    """Replay history through the rules, matrix, silences and policies; count what they do."""
    if sum(x is not None for x in (prometheus_url, agent_url, samples_file)) != 1:
        raise click.UsageError("give exactly one of --prometheus URL, --agent URL, --samples FILE")
    cfg = load_config(config_path)
    try:
        source = (prometheus_url, agent_url, samples_file)
        report = _run(cfg, source, (start_text, end_text, step_text), stored_silences)
    except BacktestError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        print_json(report.to_json())
    else:
        console.print(report_table(report))


def _run(
    cfg: AgentConfig, source: tuple[str | None, str | None, Path | None],
    when: tuple[str, str, str | None], stored_silences: bool,
) -> BacktestReport:  # fmt: skip
    now = time.time()
    start, end = parse_instant(when[0], now, "--from"), parse_instant(when[1], now, "--to")
    step = _step(when[2], cfg)
    url, agent_url, path = source
    if agent_url is not None:
        names = sorted({q.split("{", 1)[0] for q in selectors(cfg.rules)})
        history = from_agent(agent_url, names)
    elif url is not None:
        fetch = min(step, cfg.evaluation.interval)  # window functions see agent-like density
        since = start - lookback(cfg, fetch)
        history = from_prometheus(url, selectors(cfg.rules), since, end, fetch)
    else:
        history = load_samples(path) if path is not None else []
    silences = open_state(cfg).list_silences(None) if stored_silences else []
    return backtest(cfg, history, start, end, step, silences)


def _step(text: str | None, cfg: AgentConfig) -> float:
    if text is None:
        return cfg.evaluation.interval
    try:
        step = parse_duration(text)
    except ValueError:
        raise BacktestError(f"--step: invalid duration {text!r}") from None
    if step <= 0:
        raise BacktestError("--step must be positive")
    return step


_COLUMNS = (
    ("alerts", "alerts"), ("supp.", "suppressed"), ("tickets", "tickets"),
    ("occur.", "occurrences"), ("approv.", "approvals"), ("auto", "automatic_runs"),
    ("flap", "flapping"),
)  # fmt: skip
"""(header, RuleCounts field): headers short, so the table fits a terminal; see --json."""


def report_table(report: BacktestReport) -> Table:
    """The report as a rich table: one row per rule, then the totals."""
    title = (
        f"backtest {_iso(report.start)} → {_iso(report.end)}, step {_span(report.step)}: "
        f"{report.evaluations} evaluations, {report.samples} samples"
    )
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("rule", no_wrap=True)
    for header in [*(h for h, _ in _COLUMNS), "SLA breaches\nresp./resol.", "silenced/\ninhibited"]:
        table.add_column(header, justify="right")
    for name, counts in report.rules.items():
        table.add_row(name, *_cells(counts))
    table.add_section()
    table.add_row("total", *_cells(report.totals), style="bold")
    return table


def _cells(counts: RuleCounts) -> list[str]:
    numbers = [str(getattr(counts, attr)) for _, attr in _COLUMNS]
    breaches = f"{counts.response_breaches}/{counts.resolution_breaches}"
    muted = f"{_span(counts.silenced_seconds)}/{_span(counts.inhibited_seconds)}"
    return [*numbers, breaches, muted]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _span(seconds: float) -> str:
    """`0s`, `45s`, `12m`, `3h20m` for a table cell."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "",
             f"{secs}s" if secs and not hours else ""]  # fmt: skip
    return "".join(parts) or ("0s" if seconds == 0 else f"{seconds:g}s")
