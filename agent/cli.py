"""The `opswatch` command: run the agent, check its config, and work with its state."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from agent import config as config_mod
from agent import logs
from agent.backtest_cli import backtest_command
from agent.cli_common import (
    actor_name,
    config_option,
    console,
    err_console,
    json_option,
    load_config,
    open_state,
    print_json,
    printable,
    when,
)
from agent.cli_rules import rules_group, silences_group
from agent.errors import ConflictError, OpsWatchError
from agent.model import RemediationRun, RunState, Ticket, TicketState
from collector.snmp.cli import add_commands as add_snmp_commands


@click.group()
@click.version_option(package_name="opswatch")
def main() -> None:
    """OpsWatch: monitoring and automated remediation agent."""


@main.command()
@config_option
def check(config_path: Path) -> None:
    """Validate agent.yaml and list every problem with its location."""
    cfg = load_config(config_path)
    enabled = [n for n, s in cfg.collectors if getattr(s, "enabled", False)]
    click.echo(
        f"{config_path}: OK ({len(cfg.rules)} rules, {len(enabled)} collectors, "
        f"{len(cfg.remediation.runbooks)} runbooks)"
    )


@main.command()
def schema() -> None:
    """Print the JSON Schema of agent.yaml."""
    click.echo(json.dumps(config_mod.json_schema(), indent=2))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (Linux, macOS), else asyncio's own.

    The agent's loop carries every SNMP datagram, future and timer of a poll round; uvloop
    runs that ~5% cheaper (bench/README.md). Nothing in the agent depends on which loop it is.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@main.command()
@config_option
def run(config_path: Path) -> None:
    """Run the agent until SIGTERM or SIGINT."""
    from agent.runtime import Agent

    cfg = load_config(config_path)
    os.umask(0o077)  # the state file holds run output and tickets: readable by its owner only
    logs.setup(
        cfg.agent.log.level, cfg.agent.log.format, cfg.agent.log.audit_file, cfg.secret_values()
    )
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(Agent(cfg).run())
    except OpsWatchError as exc:
        err_console.print(f"[bold red]opswatch: {escape(str(exc))}[/]")
        sys.exit(1)


@main.command()
@config_option
@click.option("--once", is_flag=True, default=True, help="Collect once and print (the default).")
@json_option
def collect(config_path: Path, once: bool, as_json: bool) -> None:
    """Run every enabled collector once and print the samples."""
    from agent.runtime import collect_once

    cfg = load_config(config_path)
    samples = asyncio.run(collect_once(cfg))
    if as_json:
        print_json([{"name": s.name, "labels": dict(s.labels), "value": s.value} for s in samples])
        return
    table = Table("metric", "labels", "value", title=f"{len(samples)} samples")
    for s in sorted(samples, key=lambda s: (s.name, s.labels)):
        labels = ", ".join(f"{k}={v}" for k, v in s.labels)
        table.add_row(escape(s.name), escape(labels), f"{s.value:.6g}")
    console.print(table)


@main.command()
@config_option
@json_option
def alerts(config_path: Path, as_json: bool) -> None:
    """List the pending and firing alerts recorded in the state store."""
    cfg = load_config(config_path)
    found = open_state(cfg).active_alerts(cfg.agent.name)
    if as_json:
        print_json(found)
        return
    table = Table("rule", "state", "level", "priority", "value", "since", "labels")
    for a in found:
        labels = ", ".join(f"{k}={v}" for k, v in a.labels)
        table.add_row(
            a.rule,
            a.state.value,
            a.level.value,
            a.priority.value,
            f"{a.value:.6g}",
            when(a.starts_at),
            escape(labels),
        )
    console.print(table)


@main.group()
def runs() -> None:
    """Remediation runs: list, show, approve, reject."""


def _run_table(found: Sequence[RemediationRun]) -> Table:
    table = Table("id", "state", "runbook", "rule", "target", "created", "by")
    for r in found:
        table.add_row(
            r.id,
            r.state.value,
            r.runbook,
            r.rule,
            escape(r.target),
            when(r.created_at),
            escape(r.approved_by or ""),
        )
    return table


@runs.command("list")
@config_option
@click.option("--state", type=click.Choice([s.value for s in RunState]), default=None)
@json_option
def runs_list(config_path: Path, state: str | None, as_json: bool) -> None:
    """List remediation runs, newest first."""
    cfg = load_config(config_path)
    found = open_state(cfg).list_runs(state=RunState(state) if state else None)
    if as_json:
        print_json(found)
    else:
        console.print(_run_table(found))


@runs.command("show")
@config_option
@click.argument("run_id")
@json_option
def runs_show(config_path: Path, run_id: str, as_json: bool) -> None:
    """Show one run with its variables and output."""
    cfg = load_config(config_path)
    found = open_state(cfg).get_run(run_id)
    if found is None:
        raise click.ClickException(f"no run {run_id}")
    if as_json:
        print_json(found)
        return
    console.print(_run_table([found]))
    click.echo(f"variables: {json.dumps(dict(found.variables))}")
    if found.reason:
        click.echo(f"reason: {printable(found.reason)}")
    click.echo(f"rc: {found.rc}\n--- output ---\n{printable(found.output)}")


def _decide(config_path: Path, run_id: str, actor: str, reason: str | None) -> RemediationRun:
    cfg = load_config(config_path)
    from agent.runtime import run_service

    service = run_service(cfg, open_state(cfg))
    try:
        if reason is None:
            return service.approve(run_id, actor, time.time())
        return service.reject(run_id, actor, reason, time.time())
    except ConflictError as exc:
        raise click.ClickException(str(exc)) from None
    except OpsWatchError as exc:
        raise click.ClickException(str(exc)) from None


@runs.command("approve")
@config_option
@click.argument("run_id")
@click.option("--as", "actor", default=None, help="Who approves (default: the login name).")
def runs_approve(config_path: Path, run_id: str, actor: str | None) -> None:
    """Approve a pending run; the agent runs it once."""
    approved = _decide(config_path, run_id, actor_name(actor), None)
    if approved.state is RunState.APPROVED:
        click.echo(f"run {approved.id} approved by {approved.approved_by}")
    else:  # the first of two approvals (policy two_approvers)
        click.echo(
            f"run {approved.id}: first approval by {approved.first_approver}; "
            "it needs a second approval from someone else"
        )


@runs.command("reject")
@config_option
@click.argument("run_id")
@click.option("--reason", required=True, help="Why the run must not happen.")
@click.option("--as", "actor", default=None, help="Who rejects (default: the login name).")
def runs_reject(config_path: Path, run_id: str, reason: str, actor: str | None) -> None:
    """Reject a pending run."""
    rejected = _decide(config_path, run_id, actor_name(actor), reason)
    click.echo(f"run {rejected.id} rejected: {rejected.reason}")


@main.group()
def tickets() -> None:
    """Work-order tickets: list, show."""


def _ticket_table(found: Sequence[Ticket]) -> Table:
    table = Table("id", "priority", "state", "title", "opened", "response due", "occurrences")
    for t in found:
        table.add_row(
            str(t.id),
            t.priority.value,
            t.state.value,
            escape(t.title),
            when(t.opened_at),
            when(t.response_due),
            str(t.occurrences),
        )
    return table


@tickets.command("list")
@config_option
@click.option("--state", type=click.Choice([s.value for s in TicketState]), default=None)
@json_option
def tickets_list(config_path: Path, state: str | None, as_json: bool) -> None:
    """List tickets, newest first."""
    cfg = load_config(config_path)
    found = open_state(cfg).list_tickets(state=TicketState(state) if state else None)
    if as_json:
        print_json(found)
    else:
        console.print(_ticket_table(found))


@tickets.command("show")
@config_option
@click.argument("ticket_id", type=int)
@json_option
def tickets_show(config_path: Path, ticket_id: int, as_json: bool) -> None:
    """Show one ticket with its body and history."""
    cfg = load_config(config_path)
    found = open_state(cfg).get_ticket(ticket_id)
    if found is None:
        raise click.ClickException(f"no ticket {ticket_id}")
    if as_json:
        print_json(found)
        return
    console.print(_ticket_table([found]))
    click.echo(printable(found.body))
    if found.resolution:
        click.echo(f"resolution: {printable(found.resolution)}")
    for event in found.history:
        click.echo(f"{when(event.at)} {event.kind}: {printable(event.text)}")


main.add_command(rules_group)
main.add_command(silences_group)
add_snmp_commands(main)
rules_group.add_command(backtest_command)
