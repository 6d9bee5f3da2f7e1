"""`opswatch rules` and `opswatch silences`: export rules to Prometheus, mute alerts."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from agent.cli_common import (
    actor_name,
    config_option,
    console,
    err_console,
    json_option,
    load_config,
    open_state,
    print_json,
)
from agent.config import parse_duration
from agent.errors import StoreError
from agent.risk_config import SilenceConfig, format_matcher
from exporters.prometheus_rules import export_rules


@click.group("rules")
def rules_group() -> None:
    """Rules: export them for Prometheus, replay history through them."""


@rules_group.command("export")
@config_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the rule file here instead of standard output.")  # fmt: skip
def rules_export(config_path: Path, output: Path | None) -> None:
    """Write Prometheus alerting rules for every rule PromQL can express."""
    cfg = load_config(config_path)
    exported = export_rules(cfg.rules, interval=cfg.evaluation.interval)
    text = yaml.safe_dump(exported.file, sort_keys=False, allow_unicode=True)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
    for note in exported.skipped:
        err_console.print(f"[yellow]skipped[/] {escape(note.rule)}: {escape(note.text)}")
    for note in exported.notes:
        err_console.print(f"[dim]note[/] {escape(note.rule)}: {escape(note.text)}")


@click.group("silences")
def silences_group() -> None:
    """Silences: alerts still evaluated and exported, but no run and no ticket."""


@silences_group.command("add")
@config_option
@click.option(
    "-m",
    "--match",
    "matchers",
    multiple=True,
    required=True,
    help='A matcher like alertname="DiskFull" or host=~"web.*" (repeatable).',
)
@click.option(
    "--for",
    "duration",
    default="2h",
    show_default=True,
    help="How long from --start, e.g. 90m (ad hoc silences).",
)
@click.option("--start", default=None, help="When it begins (ISO 8601 with offset; default now).")
@click.option("--until", default=None, help="When it ends (ISO 8601 with offset); beats --for.")
@click.option(
    "--window",
    default=None,
    metavar="HH:MM-HH:MM",
    help="A recurring maintenance window in local time (with --weekday, --time-zone).",
)
@click.option(
    "--weekday",
    "weekdays",
    multiple=True,
    type=click.Choice(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
    help="Days the window starts on (repeatable; default every day).",
)
@click.option("--time-zone", default="UTC", show_default=True, help="e.g. Europe/Berlin.")
@click.option("--comment", required=True, help="Why (shown with every silenced alert).")
@click.option("--as", "actor", default=None, help="Author (default: the login name).")
@json_option  # fmt: skip
def silences_add(
    config_path: Path, matchers: tuple[str, ...], duration: str, start: str | None,
    until: str | None, window: str | None, weekdays: tuple[str, ...], time_zone: str,
    comment: str, actor: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Silence matching alerts: now for a while, from --start to --until, or in a window."""
    cfg = load_config(config_path)
    now = time.time()
    spec: dict[str, Any] = {"matchers": list(matchers), "author": actor_name(actor),
                            "comment": comment, "starts_at": start or _utc(now)}  # fmt: skip
    try:
        if window is not None:
            begin, _, end = window.partition("-")
            spec["recurring"] = [{"weekdays": list(weekdays) or None, "start": begin,
                                  "end": end, "time_zone": time_zone}]  # fmt: skip
            spec["recurring"][0] = {k: v for k, v in spec["recurring"][0].items() if v}
            spec["ends_at"] = until
        else:
            spec["ends_at"] = until or _utc(now + parse_duration(duration))
        silence = SilenceConfig.model_validate(spec)
    except ValidationError as exc:
        raise click.ClickException("; ".join(e["msg"] for e in exc.errors())) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    stored = open_state(cfg).add_silence(silence, now)
    if as_json:
        print_json(stored.model_dump(mode="json"))
    else:
        ends = stored.ends_at.isoformat() if stored.ends_at else "no end"
        click.echo(f"silence {stored.id} until {ends}")


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@silences_group.command("list")
@config_option
@click.option("--all", "show_all", is_flag=True, help="Include silences that have ended.")
@json_option
def silences_list(config_path: Path, show_all: bool, as_json: bool) -> None:
    """List stored silences and those in agent.yaml."""
    cfg = load_config(config_path)
    stored = open_state(cfg).list_silences(None if show_all else time.time())
    found = [*cfg.silences, *stored]
    if as_json:
        print_json([s.model_dump(mode="json") for s in found])
        return
    table = Table("id", "matchers", "from", "until", "author", "comment")
    for s in found:
        matchers = ", ".join(format_matcher(m) for m in s.matchers)
        start = s.starts_at.isoformat() if s.starts_at else "-"
        end = s.ends_at.isoformat() if s.ends_at else "recurring"
        table.add_row(s.id, escape(matchers), start, end, escape(s.author), escape(s.comment))
    console.print(table)


@silences_group.command("expire")
@config_option
@click.argument("silence_id")
@click.option("--as", "actor", default=None, help="Who ends it (default: the login name).")
def silences_expire(config_path: Path, silence_id: str, actor: str | None) -> None:
    """End a stored silence now."""
    cfg = load_config(config_path)
    try:
        open_state(cfg).expire_silence(silence_id, actor_name(actor), time.time())
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"silence {silence_id} expired")
    sys.stdout.flush()
