"""The SNMP poller: every target of one interval, concurrently, each within its own deadline.

A poll of one target is a GET of sysUpTime and the profiles' scalars, then one walk per table;
v1/v2c go through the shared-socket `SnmpClient`, v3 through `usm.UsmClient` (one pysnmp engine
per credential set). A dead or slow target holds one concurrency slot until its own deadline,
which ends before the collector's timeout: it is reported down with its error and nobody else
waits for it. Samples are named as snmp_exporter names them, plus the agent's own
`opswatch_snmp_*` health series per target and the derived interface indicators.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import socket
import time
from collections.abc import Collection, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agent.model import MetricMeta, MetricType, Sample, make_labels
from collector.snmp import counters, profiles
from collector.snmp.client import SnmpClient, Target
from collector.snmp.errors import SnmpAuthError, SnmpError, SnmpTimeout
from collector.snmp.model import Oid, Tag, VarBind
from collector.snmp.page import DevicePage, PageWriter
from collector.snmp.replay import Recording, Replay
from collector.snmp.v3model import UsmUser, V3Target

if TYPE_CHECKING:  # the config's pydantic models stay out of the poller process
    from collector.snmp.config import Credential, SnmpSection, TargetConfig

log = logging.getLogger(__name__)

SYS_UPTIME_0 = Oid((1, 3, 6, 1, 2, 1, 1, 3, 0))
_GET_CHUNK = 20  # varbinds per GET: small enough for any agent's PDU size
_DEADLINE_SHARE = 0.9  # of the collector timeout: targets end before the scheduler gives up
_PDUS: ContextVar[list[int] | None] = ContextVar("opswatch_snmp_pdus", default=None)

FAMILIES = (
    MetricMeta("opswatch_snmp_up", MetricType.GAUGE, "1 if the last poll of the target worked."),
    MetricMeta(
        "opswatch_snmp_poll_duration_seconds", MetricType.GAUGE, "Wall time of the last poll."
    ),
    MetricMeta("opswatch_snmp_pdus_total", MetricType.COUNTER, "Request PDUs sent, retries too."),
    MetricMeta("opswatch_snmp_varbinds", MetricType.GAUGE, "Varbinds received in the last poll."),
    MetricMeta(
        "opswatch_snmp_last_error",
        MetricType.GAUGE,
        "1 while the last poll failed with `error`, 0 once a poll works again.",
    ),
    MetricMeta(
        "opswatch_snmp_response_seconds",
        MetricType.GAUGE,
        "Round trip of the first GET of the last poll (sysUpTime).",
    ),
    MetricMeta(
        "opswatch_snmp_availability_ratio",
        MetricType.GAUGE,
        "Share of polls that worked over the availability window.",
    ),
)


@dataclass(frozen=True, slots=True)
class PollTarget:
    """One device as the poller sees it: resolved credentials and profiles, no config types."""

    name: str
    address: str
    profiles: tuple[profiles.Profile, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    port: int = 161
    timeout: float = 2.0
    retries: int = 1
    version: str = "2c"
    community: str = field(default="", repr=False)
    v3: V3Target | None = None
    """Set for v3 targets; its host and port are used as given."""
    credential: str = ""
    """Name of the credential set: v3 targets sharing it share one pysnmp engine."""


@dataclass(slots=True)
class _Health:
    pdus: int = 0
    last_error: str = ""
    failed: bool = False


class _CountingClient(SnmpClient):
    """The v1/v2c client, counting each datagram it sends against the polling target."""

    def _send(self, *args: Any) -> int:
        _count_pdu()
        return super()._send(*args)


def _counting_usm(max_repetitions: int) -> Any:
    """A v3 client that counts each request against the polling target.

    Requests go through our own USM path (v3client); pysnmp is imported only when that path
    gets no answer and pysnmp has to ask again and say why.
    """
    from collector.snmp.v3client import FastUsmClient

    def pysnmp_client() -> Any:
        from collector.snmp.usm import UsmClient

        class CountingUsm(UsmClient):
            async def request(self, *args: Any) -> list[VarBind]:
                _count_pdu()
                return await super().request(*args)

        return CountingUsm(max_repetitions=max_repetitions)

    return FastUsmClient(pysnmp_client, max_repetitions=max_repetitions, on_send=_count_pdu)


def _count_pdu() -> None:
    counter = _PDUS.get()
    if counter is not None:
        counter[0] += 1


class SnmpPoller:
    """Polls its targets each interval; a native asyncio collector (`acollect`)."""

    def __init__(
        self,
        targets: Sequence[PollTarget],
        *,
        name: str = "snmp",
        interval: float = 60.0,
        timeout: float = 50.0,
        concurrency: int = 64,
        max_repetitions: int = 25,
        availability_window: float = 3600.0,
    ) -> None:
        self.name, self.interval, self.timeout = name, interval, timeout
        self.targets = tuple(targets)
        self._concurrency = concurrency
        self._max_repetitions = max_repetitions
        self.state = counters.CounterState()
        self.availability = counters.Availability(availability_window)
        self._health = {t.name: _Health() for t in self.targets}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: SnmpClient | None = None
        self._usm: dict[str, Any] = {}  # credential name -> FastUsmClient, made on first v3 poll
        self._plans: dict[
            tuple[int, ...], tuple[tuple[profiles.Profile, ...], list[Oid], list[Oid]]
        ] = {}
        self._keep: frozenset[str] | None = None
        self._replays: dict[str, Replay] = {}  # target name -> its last render, recorded
        self.texts: dict[str, list[bytes]] = {}
        """Pre-rendered exposition lines of the last round by family, a piece per target."""
        self.rule_samples: list[Sample] = []
        """Samples of the last round that `texts` exports and the rules read (`pre_render`)."""
        self.pages: dict[str, DevicePage] | None = None
        """With `pre_render(pages=True)`: each target's page of its last good poll."""

    def pre_render(self, keep: Collection[str], *, pages: bool = False) -> None:
        """From now on write profile and indicator families as exposition lines (`texts`).

        `collect` then returns only the per-target health series and anything the direct
        renderer cannot write; the written samples named in `keep` (what rules read) are in
        `rule_samples`, for the rules only. The agent does this: the 2,000 series of a switch
        become 2,000 lines once per poll, and only the few that rules read become samples.
        With `pages`, each target's lines are kept compact in `pages` instead of `texts`, from
        the moment its poll ends, to be written when scraped (`page.render`).
        """
        keep = frozenset(keep)
        if keep != self._keep:
            self._replays.clear()  # a replay's kept samples are those of the set it was made for
        self._keep = keep
        if pages and self.pages is None:
            self.pages = {}

    def describe(self) -> tuple[MetricMeta, ...]:
        """Profile families of every target, derived indicators and per-target health."""
        seen: dict[str, MetricMeta] = {}
        for target in self.targets:
            for profile in target.profiles:
                seen.update((m.name, m) for m in profile.describe())
        return (*seen.values(), *counters.FAMILIES, *FAMILIES)

    def collect(self, now: float) -> list[Sample]:
        """Blocking form for callers without a loop: one poll on a private event loop."""
        return asyncio.run(self._once(now))

    async def _once(self, now: float) -> list[Sample]:
        try:
            return await self.acollect(now)
        finally:
            self.close()

    async def acollect(self, now: float) -> list[Sample]:
        """Poll every target concurrently; each ends by its deadline and reports itself."""
        await self.open()
        if self._keep is not None:  # a round that does not finish leaves no stale page behind
            self.texts, self.rule_samples = {}, []
        deadline = time.monotonic() + self.timeout * _DEADLINE_SHARE
        slots = asyncio.Semaphore(self._concurrency)
        polls = [self._poll(t, now, deadline, slots) for t in self.targets]
        out: list[Sample] = []
        texts: dict[str, list[bytes]] = {}
        for_rules: list[Sample] = []
        for samples, lines, rule_only in await asyncio.gather(*polls):
            out.extend(samples)
            for_rules.extend(rule_only)
            for family, text in lines.items():
                texts.setdefault(family, []).append(text)
        if self._keep is not None:
            self.texts, self.rule_samples = texts, for_rules
        self.state.prune(now - 3 * self.interval)  # rows gone for three rounds
        return out

    def close(self) -> None:
        """Close the shared socket and every pysnmp engine."""
        if self._client is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed, socket with it
                self._client.close()
        for usm in self._usm.values():
            usm.close()
        self._client, self._usm, self._loop = None, {}, None

    async def open(self) -> None:
        """Open the shared socket on the running loop (again if the loop changed)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._client is not None:
            return
        self.close()  # sockets and engines belong to one event loop
        client = _CountingClient(max_repetitions=self._max_repetitions)
        await client.open()
        self._client, self._loop = client, loop

    async def _poll(
        self, target: PollTarget, now: float, deadline: float, slots: asyncio.Semaphore
    ) -> tuple[list[Sample], dict[str, bytes], list[Sample]]:
        started = time.monotonic()
        pdus = [0]
        token = _PDUS.set(pdus)  # the task gather made has its own context: no crosstalk
        try:
            async with asyncio.timeout_at(_loop_deadline(deadline)), slots:
                varbinds, latency = await self._fetch(target)
        except (SnmpError, TimeoutError, OSError) as exc:
            if self.pages is not None:  # a device that did not answer shows no stale series
                self.pages.pop(target.name, None)
            return self._report(target, now, started, pdus[0], _describe(exc, target)), {}, []
        finally:
            _PDUS.reset(token)
        return self._samples(target, now, started, pdus[0], varbinds, latency)

    def _plan(self, target: PollTarget) -> tuple[list[Oid], list[Oid]]:
        """The scalars to GET (sysUpTime first) and the roots to walk for `target`'s profiles.

        Kept per profile set: deriving them parses every OID of the profiles, which cost ~3 ms
        a poll when it was done each time; profiles do not change while the poller runs.
        """
        key = tuple(map(id, target.profiles))
        plan = self._plans.get(key)
        if plan is None:
            scalars = [o for o in profiles.all_gets(target.profiles) if o != SYS_UPTIME_0]
            walks = profiles.all_walks(target.profiles)
            # the profiles are kept alive with the plan, so their ids stay theirs
            plan = self._plans[key] = (target.profiles, [SYS_UPTIME_0, *scalars], walks)
        return plan[1], plan[2]

    async def _fetch(self, target: PollTarget) -> tuple[list[VarBind], float]:
        """GET the scalars (sysUpTime first, timed), then walk each table."""
        gets, walks = self._plan(target)
        get, walk = await self.methods(target)
        started = time.monotonic()
        out = await get(gets[:_GET_CHUNK])
        latency = time.monotonic() - started
        for start in range(_GET_CHUNK, len(gets), _GET_CHUNK):
            out.extend(await get(gets[start : start + _GET_CHUNK]))
        for root in walks:
            out.extend(await walk(root))
        return out, latency

    async def methods(self, target: PollTarget) -> tuple[Any, Any]:
        """The (get, walk) coroutine functions that reach `target` with its credentials."""
        if target.v3 is not None:
            usm = self._usm.get(target.credential)
            if usm is None:
                # Opened before it is shared: the other targets of a first round would find a
                # client without its socket yet and go to pysnmp (9 of 10 did).
                usm = _counting_usm(self._max_repetitions)
                await usm.open()
                shared = self._usm.setdefault(target.credential, usm)
                if shared is not usm:  # another target opened one meanwhile: use that
                    usm.close()
                    usm = shared
            v3 = target.v3
            host = await _resolved(v3.host, v3.port)  # a name: looked up once a poll
            if host != v3.host:
                v3 = dataclasses.replace(v3, host=host)
            return (lambda oids: usm.get(v3, oids)), (lambda root: usm.walk(v3, root))
        assert self._client is not None
        client, v2 = self._client, await _v2_target(target)
        return (lambda oids: client.get(v2, oids)), (lambda root: client.walk(v2, root))

    def _samples(
        self,
        target: PollTarget,
        now: float,
        started: float,
        pdus: int,
        varbinds: list[VarBind],
        latency: float,
    ) -> tuple[list[Sample], dict[str, bytes], list[Sample]]:
        """The target's samples; with `pre_render` also its lines by family and rule samples."""
        base = {"target": target.name, **target.labels}
        wanted = self._keep
        if wanted is not None and self.pages is not None:
            unwritten, for_rules = self._page_samples(target, now, base, varbinds, wanted)
            unwritten.extend(self._report(target, now, started, pdus, None, len(varbinds)))
            unwritten.append(_sample("opswatch_snmp_response_seconds", latency, now, base))
            return unwritten, {}, for_rules
        table = profiles.Table(varbinds)
        self._observe_uptime(target.name, table.by_oid.get(SYS_UPTIME_0), now)
        out: list[Sample] = []
        if wanted is None:
            for profile in target.profiles:
                out.extend(profiles.render(profile, table, now, base))
            out.extend(counters.interface_indicators(self.state, target.name, out, now))
            lines: dict[str, list[str]] = {}
            rule_only: list[Sample] = []
        else:
            lines, kept = {}, list[Sample]()
            keep = wanted | counters.INPUTS  # the indicators are computed from these
            for profile in target.profiles:
                mine: dict[str, list[str]] = {}
                out.extend(profiles.render(profile, table, now, base, mine, keep, kept))
                _merge(lines, mine)
            rule_only = self._indicators(target, now, out, kept, wanted, lines)
        out.extend(self._report(target, now, started, pdus, None, len(varbinds)))
        out.append(_sample("opswatch_snmp_response_seconds", latency, now, base))
        texts = {family: "".join(text).encode() for family, text in lines.items() if text}
        return out, texts, rule_only

    def _page_samples(
        self,
        target: PollTarget,
        now: float,
        base: dict[str, str],
        varbinds: list[VarBind],
        wanted: frozenset[str],
    ) -> tuple[list[Sample], list[Sample]]:
        """Write `target`'s page: replayed from its last render when the poll allows it.

        Returns the samples the page cannot hold and the rule samples.
        """
        assert self.pages is not None
        replay = self._replays.get(target.name)
        done = None if replay is None else replay.apply(varbinds, base, now)
        if done is not None and replay is not None:
            self._observe_uptime(
                target.name, varbinds[replay.uptime] if replay.uptime >= 0 else None, now
            )
            page, kept, texts = done
            out: list[Sample] = []
        else:
            table = profiles.Table(varbinds)
            uptime = table.by_oid.get(SYS_UPTIME_0)
            self._observe_uptime(target.name, uptime, now)
            writer, kept, out = PageWriter(), list[Sample](), []
            record = Recording(varbinds)
            keep = wanted | counters.INPUTS  # the indicators are computed from these
            for profile in target.profiles:
                out.extend(profiles.render(profile, table, now, base, writer, keep, kept, record))
            page = writer.freeze()
            made = Replay.of(record, varbinds, base, page, uptime)
            texts = record.texts
            if made is None:
                self._replays.pop(target.name, None)
            else:
                self._replays[target.name] = made
        more = PageWriter()
        rule_only = self._indicators(target, now, out, kept, wanted, more, texts)
        self.pages[target.name] = more.freeze(onto=page)
        return out, rule_only

    def _indicators(
        self,
        target: PollTarget,
        now: float,
        out: list[Sample],
        kept: list[Sample],
        wanted: frozenset[str],
        lines: dict[str, list[str]] | PageWriter,
        label_texts: dict[int, str] | None = None,
    ) -> list[Sample]:
        """Write the interface indicators; the rule samples of `kept` and of them.

        `label_texts` caches label texts by the identity of a label tuple: a row's indicators
        share one, and a replay keeps its rows' tuples alive from poll to poll.
        """
        indicators = counters.interface_indicators(self.state, target.name, out + kept, now)
        rule_only = [s for s in kept if s.name in wanted]
        label_texts = {} if label_texts is None else label_texts
        page = lines if isinstance(lines, PageWriter) else None
        for s in indicators:
            text = None if page is None else label_texts.get(id(s.labels))
            if text is not None and page is not None:  # write_line's page case, inline
                column = page.column(s.name)
                column[0].append(text)
                column[1].append(s.value)
            elif not profiles.write_line(s, lines, label_texts):
                out.append(s)
                continue
            if s.name in wanted:
                rule_only.append(s)
        return rule_only

    def _observe_uptime(self, target: str, uptime: VarBind | None, now: float) -> None:
        if uptime is None or uptime.tag is not Tag.TIMETICKS or not isinstance(uptime.value, int):
            return  # no sysUpTime: no reboot detection, counters still get wrap/reset checks
        if self.state.observe_uptime(target, float(uptime.value), now):
            log.info("device rebooted: counter baselines reset", extra={"target": target})

    def _report(
        self,
        target: PollTarget,
        now: float,
        started: float,
        pdus: int,
        error: str | None,
        varbinds: int = 0,
    ) -> list[Sample]:
        health = self._health.setdefault(target.name, _Health())
        health.pdus += pdus
        health.failed = error is not None
        if error is not None:
            health.last_error = error
            log.warning("SNMP poll failed: %s", error, extra={"target": target.name})
        base = {"target": target.name, **target.labels}
        out = [
            _sample("opswatch_snmp_up", 0.0 if error else 1.0, now, base),
            _sample("opswatch_snmp_poll_duration_seconds", time.monotonic() - started, now, base),
            _sample("opswatch_snmp_pdus_total", health.pdus, now, base),
            _sample("opswatch_snmp_varbinds", varbinds, now, base),
            _sample(
                "opswatch_snmp_availability_ratio",
                self.availability.record(target.name, now, error is None),
                now,
                base,
            ),
            _sample(
                "opswatch_snmp_device_reboots_total",
                self.state.reboots.get(target.name, 0),
                now,
                base,
            ),
        ]
        if health.last_error:
            labels = base | {"error": health.last_error}
            out.append(_sample("opswatch_snmp_last_error", float(health.failed), now, labels))
        return out


def _merge(lines: dict[str, list[str]], more: dict[str, list[str]]) -> None:
    """Add one profile's lines to a target's; a series two profiles both emit keeps the last."""
    for family, added in more.items():
        have = lines.get(family)
        if not have:
            lines[family] = added
        elif added:  # rare: two profiles of one target name the same metric
            series = {line.rpartition(" ")[0]: line for line in (*have, *added)}
            lines[family] = list(series.values())


def _sample(name: str, value: float, now: float, labels: Mapping[str, str]) -> Sample:
    return Sample(name, make_labels(labels), float(value), now)


def _loop_deadline(monotonic_deadline: float) -> float:
    """asyncio.timeout_at takes loop time; convert from time.monotonic."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


async def _resolved(host: str, port: int) -> str:
    """`host` as an IPv4 address; a name is resolved each poll, so a DNS change needs no restart."""
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
        )
        return str(infos[0][4][0])
    return host


async def _v2_target(target: PollTarget) -> Target:
    host = await _resolved(target.address, target.port)
    version: Literal["1", "2c"] = "1" if target.version == "1" else "2c"
    return Target(host, target.port, version, target.community, target.timeout, target.retries)


def _describe(exc: BaseException, target: PollTarget) -> str:
    """A short, secret-free error text for the `error` label and the log."""
    if isinstance(exc, TimeoutError):
        return "deadline: poll did not finish within the collector timeout"
    if isinstance(exc, SnmpTimeout) and target.v3 is None:
        return f"timeout: {exc} (or wrong community)"
    if isinstance(exc, SnmpAuthError):
        return f"auth: {exc}"
    if isinstance(exc, OSError):
        return f"network: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def build_snmp_collectors(section: SnmpSection) -> list[SnmpPoller]:
    """One poller per distinct target interval, from a validated `snmp:` section."""
    if not section.enabled or not section.targets:
        return []
    available = profiles.available_profiles(section.profiles_dir)
    d = section.defaults
    groups: dict[float, list[PollTarget]] = {}
    for cfg in section.targets:
        interval = cfg.interval or d.interval
        groups.setdefault(interval, []).append(poll_target(section, cfg, available))
    return [
        SnmpPoller(
            targets,
            name="snmp" if len(groups) == 1 else f"snmp_{interval:g}s",
            interval=interval,
            timeout=max(1.0, interval * 0.8),  # leave the scheduler slack before the next tick
            concurrency=d.concurrency,
            max_repetitions=d.max_repetitions,
            availability_window=d.availability_window,
        )
        for interval, targets in sorted(groups.items())
    ]


def poll_target(
    section: SnmpSection, cfg: TargetConfig, available: Mapping[str, profiles.Profile]
) -> PollTarget:
    """Resolve one target's credentials, profiles and per-target settings."""
    cred = section.credentials[cfg.credentials]
    timeout = cfg.timeout or section.defaults.timeout
    retries = section.defaults.retries if cfg.retries is None else cfg.retries
    v3 = None
    if cred.version == "3":
        v3 = V3Target(cfg.address, usm_user(cred), cfg.port, timeout, retries)
    return PollTarget(
        name=cfg.name,
        address=cfg.address,
        profiles=tuple(available[p] for p in cfg.profiles),
        labels=dict(cfg.labels),
        port=cfg.port,
        timeout=timeout,
        retries=retries,
        version=cred.version,
        community=cred.secret("community") or "",
        v3=v3,
        credential=cfg.credentials,
    )


def usm_user(cred: Credential) -> UsmUser:
    """The USM user of a v3 credential set, keys in clear for pysnmp only."""
    return UsmUser(
        user=cred.user or "",
        auth_protocol=cred.auth_protocol,
        auth_key=cred.secret("auth_key"),
        priv_protocol=cred.priv_protocol,
        priv_key=cred.secret("priv_key"),
        context=cred.context,
        engine_id=bytes.fromhex(cred.engine_id) if cred.engine_id else None,
    )
