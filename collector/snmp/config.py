"""The `snmp:` section of agent.yaml: credentials apart from targets (snmp_exporter's auth/module).

```yaml
snmp:
  credentials:
    campus: {version: 2c, community: ${CAMPUS_COMMUNITY}}
    core-v3: {version: 3, user: opswatch, auth_protocol: sha256, auth_key_file: /etc/ow/auth,
              priv_protocol: aes256, priv_key_file: /etc/ow/priv}
  targets:
    - {name: core1, address: 10.0.0.1, credentials: core-v3, profiles: [system, if_mib]}
```
Every reference (credential and profile names) is checked with a did-you-mean hint.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from agent.config_base import Duration, Secret, Strict, read_secret_file
from collector.snmp.profiles import available_profiles
from collector.snmp.v3model import AuthProtocol, PrivProtocol
from exporters.text import usable_label_name

Loc = tuple[str | int, ...]
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


def _version(value: object) -> str:
    """YAML reads `version: 2c` as text and `version: 3` as a number: take both."""
    text = str(value).strip().lower()
    return {"2": "2c", "v1": "1", "v2c": "2c", "v3": "3"}.get(text, text)


Version = Annotated[Literal["1", "2c", "3"], BeforeValidator(_version)]


class Credential(Strict):
    """One credential set: a community (v1/v2c) or a USM user (v3)."""

    version: Version = "2c"
    community: Secret | None = None
    community_file: Path | None = None
    user: str | None = None
    auth_protocol: AuthProtocol | None = None
    auth_key: Secret | None = None
    auth_key_file: Path | None = None
    priv_protocol: PrivProtocol | None = None
    """aes256 = Blumenthal key extension (net-snmp); aes256c = Reeder (Cisco). Same for 192."""
    priv_key: Secret | None = None
    priv_key_file: Path | None = None
    context: str = ""
    engine_id: str | None = None
    """Hex; only needed when the agent's engine ID cannot be discovered."""

    @field_validator("engine_id")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.lower().removeprefix("0x").replace(":", "")
        if not re.fullmatch(r"([0-9a-f]{2}){5,32}", text):
            raise PydanticCustomError("engine_id", "engine_id must be 5-32 bytes of hex")
        return text

    @model_validator(mode="after")
    def _complete(self) -> Credential:
        for name in ("community", "auth_key", "priv_key"):
            self._from_file(name)
        problems = list(_v3_problems(self) if self.version == "3" else _v12_problems(self))
        if problems:
            raise PydanticCustomError("credential", "; ".join(problems))
        return self

    def _from_file(self, name: str) -> None:
        path = getattr(self, f"{name}_file")
        if path is None:
            return
        if getattr(self, name) is not None:
            raise PydanticCustomError("secret_file", "set {n} or {n}_file, not both", {"n": name})
        object.__setattr__(self, name, read_secret_file(path, f"{name}_file"))

    def secret(self, name: Literal["community", "auth_key", "priv_key"]) -> str | None:
        """The clear text of one secret, for the protocol layer only."""
        value: SecretStr | None = getattr(self, name)
        return None if value is None else value.get_secret_value()


def _v12_problems(cred: Credential) -> Iterator[str]:
    if cred.community is None:
        yield f"version {cred.version} needs community or community_file"
    v3_only = ("user", "auth_protocol", "auth_key", "priv_protocol", "priv_key", "engine_id")
    for name in v3_only:
        if getattr(cred, name) is not None:
            yield f"{name} is for version 3 only"


def _v3_problems(cred: Credential) -> Iterator[str]:
    if not cred.user:
        yield "version 3 needs user"
    if cred.community is not None:
        yield "community is for versions 1 and 2c only"
    for kind in ("auth", "priv"):
        protocol, key = getattr(cred, f"{kind}_protocol"), getattr(cred, f"{kind}_key")
        if (protocol is None) != (key is None):
            yield f"{kind}_protocol and {kind}_key (or {kind}_key_file) go together"
        if key is not None and len(key.get_secret_value()) < 8:
            yield f"{kind}_key must be at least 8 characters (RFC 3414)"
    if cred.priv_protocol is not None and cred.auth_protocol is None:
        yield "priv_protocol needs auth_protocol (USM has no privacy without authentication)"


class Defaults(Strict):
    """What a target uses unless it says otherwise."""

    interval: Duration = 60.0
    timeout: Duration = 2.0
    """Per request try; each retry waits twice as long as the one before."""
    retries: int = Field(default=1, ge=0, le=5)
    max_repetitions: int = Field(default=25, ge=1, le=200)
    concurrency: int = Field(default=64, ge=1, le=4096)
    """Targets polled at once by one poller."""
    availability_window: Duration = 3600.0
    """Window of `opswatch_snmp_availability_ratio`."""


class TargetConfig(Strict):
    """One device: where it is, which credentials, which profiles, which labels."""

    name: str
    address: str
    port: int = Field(default=161, gt=0, lt=65536)
    credentials: str
    profiles: list[str] = ["system", "if_mib"]
    labels: dict[str, str] = {}
    timeout: Duration | None = None
    retries: int | None = Field(default=None, ge=0, le=5)
    interval: Duration | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise PydanticCustomError("name", "target name may use letters, digits and _.:- only")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for label in value:
            if label == "target":
                raise PydanticCustomError(
                    "labels", "'target' is the target's name, set by OpsWatch: pick another label"
                )
            if not usable_label_name(label):
                raise PydanticCustomError(
                    "labels", f"{label!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                )
        return value


class SnmpSection(Strict):
    """The whole `snmp:` section."""

    enabled: bool = True
    process: bool = True
    """Poll in a child process of its own (`collector/snmp/process.py`): the polled series
    stay out of the agent, polling gets a core of its own, a crash there is restarted. False
    polls inside the agent and keeps its page there (more memory, one process)."""
    credentials: dict[str, Credential] = {}
    profiles_dir: Path | None = None
    """Extra profile YAML files; a file named like a shipped profile replaces it."""
    defaults: Defaults = Defaults()
    targets: list[TargetConfig] = []

    @model_validator(mode="after")
    def _references(self) -> SnmpSection:
        problems = [f"{_format(loc)}: {text}" for loc, text in cross_check(self)]
        if problems:
            raise PydanticCustomError("snmp_reference", "; ".join(problems))
        return self


def cross_check(section: SnmpSection) -> Iterator[tuple[Loc, str]]:
    """Names that must refer to something: credentials, profiles, unique target names."""
    try:
        profiles = sorted(available_profiles(section.profiles_dir))
    except ValueError as exc:  # a broken user profile is reported, not a crash
        yield ("profiles_dir",), str(exc)
        return
    credentials = sorted(section.credentials)
    seen: set[str] = set()
    for index, target in enumerate(section.targets):
        if target.name in seen:
            yield ("targets", index, "name"), f"duplicate target name '{target.name}'"
        seen.add(target.name)
        if target.credentials not in section.credentials:
            hint = _hint(target.credentials, credentials)
            yield (
                ("targets", index, "credentials"),
                f"unknown credentials '{target.credentials}'{hint}",
            )
        for pos, profile in enumerate(target.profiles):
            if profile not in profiles:
                yield (
                    ("targets", index, "profiles", pos),
                    f"unknown profile '{profile}'{_hint(profile, profiles)}",
                )


def _hint(wanted: str, known: list[str]) -> str:
    close = difflib.get_close_matches(wanted, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else f"; defined: {', '.join(known) or 'none'}"


def _format(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
