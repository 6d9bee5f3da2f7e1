"""What every `opswatch` subcommand shares: the config option, output helpers, the store."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from agent import config as config_mod
from agent import logs
from agent.api import to_json
from agent.errors import ConfigError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def default_config() -> str:
    """$OPSWATCH_CONFIG, else ./agent.yaml, else /etc/opswatch/agent.yaml."""
    if "OPSWATCH_CONFIG" in os.environ:
        return os.environ["OPSWATCH_CONFIG"]
    return "agent.yaml" if Path("agent.yaml").exists() else "/etc/opswatch/agent.yaml"


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    default=default_config,
    show_default="$OPSWATCH_CONFIG or agent.yaml",
    type=click.Path(dir_okay=False, path_type=Path),
    help="agent.yaml to use.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def load_config(path: Path) -> config_mod.AgentConfig:
    """Load agent.yaml or exit 1 after listing every problem."""
    try:
        cfg = config_mod.load(path)
    except ConfigError as exc:
        err_console.print(f"[bold red]{escape(str(path))}: {len(exc.problems)} problem(s)[/]")
        for problem in exc.problems:
            err_console.print(f"  {escape(str(problem))}")
        sys.exit(1)
    # Every command logs through the scrubber, so a database error never prints a password.
    logs.setup("warning", secrets=cfg.secret_values())
    return cfg


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def print_json(data: Any) -> None:
    click.echo(json.dumps(to_json(data), indent=2, sort_keys=True))


def open_state(cfg: config_mod.AgentConfig) -> Any:
    """The state store of this config, migrated (the CLI works whether or not the agent runs)."""
    from agent.store import Store

    os.umask(0o077)  # if this command creates the state file, only its owner may read it
    store = Store(cfg.database_url)
    store.migrate()
    return store


def actor_name(name: str | None) -> str:
    return name or os.environ.get("SUDO_USER") or os.environ.get("USER") or "unknown"


def printable(text: str) -> str:
    """Stored text for a terminal: lines kept, other control characters (ESC...) escaped."""
    return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)
