"""Microseconds per varbind: our BER decoder against pyasn1, on the same recorded packets.

The packets are a real GetBulk walk (max-repetitions 25) of a 48-row ifTable served by net-snmp
snmpd, recorded by tests/unit/collector/snmp/fixtures/record_snmpd.py. pyasn1 decodes through
pysnmp's v2c Message spec, as pysnmp does; its figure leaves out turning pyasn1 objects into
Python values, which only adds to it. Ours is shown cold (OID cache emptied every round) and
warm (steady polling of the same devices). Best of --rounds, to keep scheduler noise out.

    .venv/bin/python bench/snmp_codec.py
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyasn1.codec.ber import decoder  # noqa: E402
from pysnmp.proto.api import v2c  # noqa: E402

from collector.snmp import ber  # noqa: E402

FIXTURE = REPO / "tests/unit/collector/snmp/fixtures/snmpd_packets.json"


def best_seconds(job: Callable[[], object], rounds: int, before: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(rounds):
        before()
        started = time.perf_counter()
        job()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--pyasn1-rounds", type=int, default=5)
    args = parser.parse_args()
    record = json.loads(FIXTURE.read_text())
    packets = [bytes.fromhex(h) for h in record["packets"]["v2c_iftable_bulk25"]]
    varbinds = sum(len(ber.decode_message(p).pdu.varbinds) for p in packets)
    spec = v2c.Message()

    def ours() -> None:
        for packet in packets:
            ber.decode_message(packet)

    def theirs() -> None:
        for packet in packets:
            decoder.decode(packet, asn1Spec=spec)

    def nothing() -> None:
        pass

    cold = best_seconds(ours, args.rounds, ber._OID_CACHE.clear)
    warm = best_seconds(ours, args.rounds, nothing)
    slow = best_seconds(theirs, args.pyasn1_rounds, nothing)
    print(f"{len(packets)} Response packets, {varbinds} varbinds ({record['agent']}); "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"{'decoder':<24}{'µs/varbind':>12}{'ms/walk':>10}")
    for name, seconds in (("ours, cold OID cache", cold), ("ours, warm OID cache", warm),
                          ("pyasn1 (pysnmp v2c)", slow)):  # fmt: skip
        print(f"{name:<24}{seconds / varbinds * 1e6:>12.2f}{seconds * 1e3:>10.2f}")
    print(f"pyasn1 / ours (cold): {slow / cold:.0f}x")


if __name__ == "__main__":
    main()
