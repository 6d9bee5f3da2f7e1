"""`opswatch snmp get|walk TARGET ...`: the poller's credentials and errors, for a person.

Output is `snmpwalk -On`'s: one `.OID = TYPE: value` line per varbind, so it can be diffed
against net-snmp's tools. A TARGET is a target name from agent.yaml's `snmp.targets`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from collector.snmp import profiles
from collector.snmp.config import SnmpSection
from collector.snmp.errors import SnmpError
from collector.snmp.model import Oid, Tag, VarBind
from collector.snmp.poller import PollTarget, SnmpPoller, poll_target

_TYPE_NAMES = {
    Tag.INTEGER: "INTEGER",
    Tag.OCTET_STRING: "STRING",
    Tag.OBJECT_IDENTIFIER: "OID",
    Tag.IP_ADDRESS: "IpAddress",
    Tag.COUNTER32: "Counter32",
    Tag.GAUGE32: "Gauge32",
    Tag.TIMETICKS: "Timeticks",
    Tag.OPAQUE: "Opaque",
    Tag.COUNTER64: "Counter64",
}
_EXCEPTIONS = {
    Tag.NO_SUCH_OBJECT: "No Such Object available on this agent at this OID",
    Tag.NO_SUCH_INSTANCE: "No Such Instance currently exists at this OID",
    Tag.END_OF_MIB_VIEW: "No more variables left in this MIB View",
}


def format_varbind(vb: VarBind) -> str:
    """One line as `snmpget -On` prints it."""
    if vb.is_exception or vb.tag is Tag.NULL:
        return f".{vb.oid} = {_EXCEPTIONS.get(vb.tag, 'NULL')}"
    value = vb.value
    if isinstance(value, bytes):
        try:
            shown = '"' + value.decode("utf-8") + '"'
        except UnicodeDecodeError:
            return f".{vb.oid} = Hex-STRING: {value.hex(' ').upper()}"
    elif isinstance(value, Oid):
        shown = f".{value}"
    else:
        shown = str(value)
    return f".{vb.oid} = {_TYPE_NAMES.get(vb.tag, vb.tag.name)}: {shown}"


def read_section(config_path: Path) -> SnmpSection:
    """The `snmp:` section of agent.yaml, relative paths taken from the file's folder."""
    data = yaml.safe_load(config_path.read_text()) or {}
    section = dict(data.get("snmp") or {})
    if isinstance(section.get("profiles_dir"), str):
        section["profiles_dir"] = str(config_path.resolve().parent / section["profiles_dir"])
    return SnmpSection.model_validate(section)


def _target(section: SnmpSection, name: str) -> PollTarget:
    for cfg in section.targets:
        if cfg.name == name:
            return poll_target(section, cfg, profiles.available_profiles(section.profiles_dir))
    known = ", ".join(t.name for t in section.targets) or "none"
    raise click.ClickException(f"unknown target '{name}'; defined: {known}")


async def _run(target: PollTarget, job: Callable[[Any, Any], Any]) -> list[VarBind]:
    poller = SnmpPoller([target])
    await poller.open()  # the poller's own clients: same credentials, same errors
    try:
        get, walk = await poller.methods(target)
        result: list[VarBind] = await job(get, walk)
        return result
    finally:
        poller.close()


def _execute(config_path: Path, name: str, job: Callable[[Any, Any], Any]) -> None:
    target = _target(_section(config_path), name)
    try:
        varbinds = asyncio.run(_run(target, job))
    except SnmpError as exc:
        raise click.ClickException(str(exc)) from None
    for vb in varbinds:
        click.echo(format_varbind(vb))


def _section(config_path: Path) -> SnmpSection:
    try:
        return read_section(config_path)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise click.ClickException(f"{config_path}: {exc}") from None


def _oids(texts: tuple[str, ...]) -> list[Oid]:
    try:
        return [Oid.parse(t) for t in texts]
    except SnmpError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("snmp")
def snmp() -> None:
    """Ask a device from agent.yaml over SNMP, with the poller's credentials."""


_config = click.option(
    "-c",
    "--config",
    "config_path",
    default="agent.yaml",
    envvar="OPSWATCH_CONFIG",
    show_default="$OPSWATCH_CONFIG or agent.yaml",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="agent.yaml to use.",
)


@snmp.command("get")
@_config
@click.argument("target")
@click.argument("oids", nargs=-1, required=True)
def get_command(config_path: Path, target: str, oids: tuple[str, ...]) -> None:
    """GET numeric OIDs from TARGET."""
    wanted = _oids(oids)

    async def job(get: Any, _walk: Any) -> list[VarBind]:
        result: list[VarBind] = await get(wanted)
        return result

    _execute(config_path, target, job)


@snmp.command("walk")
@_config
@click.argument("target")
@click.argument("root", default="1.3.6.1.2.1.1")
def walk_command(config_path: Path, target: str, root: str) -> None:
    """Walk a numeric OID subtree, or every OID a profile fetches, on TARGET."""
    available = profiles.available_profiles(_section(config_path).profiles_dir)
    if root in available:
        gets, walks = available[root].gets(), available[root].walk_roots()
    else:
        gets, walks = [], _oids((root,))

    async def job(get: Any, walk: Any) -> list[VarBind]:
        out: list[VarBind] = await get(gets) if gets else []
        for subtree in walks:
            out.extend(await walk(subtree))
        return out

    _execute(config_path, target, job)


def add_commands(group: click.Group) -> None:
    """Attach `snmp get|walk` to the `opswatch` group."""
    group.add_command(snmp)
