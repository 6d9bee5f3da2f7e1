"""Silences: matchers, ad hoc periods, and recurring windows across DST changes (fixed clock)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.model import Alert, AlertState, Level, make_labels
from agent.risk_config import WEEKDAYS, RecurringWindow, SilenceConfig, format_matcher
from agent.silences import active_silences, in_window, is_active, silenced_by


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def alert(level: Level = Level.WARNING, /, **labels: str) -> Alert:
    return Alert(
        fingerprint="f1", rule="disk_full", state=AlertState.FIRING, level=level,
        labels=make_labels({"alertname": "disk_full", **labels}), annotations=(),
        value=1.0, starts_at=0.0,
    )  # fmt: skip


def silence(matchers: list[str], **fields: Any) -> SilenceConfig:
    data = {"matchers": matchers, "author": "ops", "comment": "planned work", **fields}
    data.setdefault("ends_at", "2030-01-01T00:00:00Z")
    return SilenceConfig.model_validate(data)


def window(start: str, end: str, zone: str, days: list[str] | None = None) -> RecurringWindow:
    data: dict[str, Any] = {"start": start, "end": end, "time_zone": zone}
    if days is not None:
        data["weekdays"] = days
    return RecurringWindow.model_validate(data)


def minutes_active(w: RecurringWindow, start: float, hours: int) -> int:
    return sum(in_window(w, start + 60 * m) for m in range(hours * 60))


# ---------------------------------------------------------------------------------------------
# Matchers and ad hoc silences

NOW = utc(2024, 6, 1, 12, 0)


@pytest.mark.parametrize(
    ("matchers", "labels", "silenced"),
    [
        (['alertname="disk_full"'], {}, True),
        (["alertname=disk_full", 'host="web1"'], {"host": "web1"}, True),
        (["alertname=disk_full", 'host="web1"'], {"host": "web2"}, False),
        (['host=~"web[0-9]+"'], {"host": "web12"}, True),
        (['host=~"web"'], {"host": "web12"}, False),  # anchored, as in Alertmanager
        (['host!="db1"'], {"host": "web1"}, True),
        (['host!~"db.*"'], {"host": "db7"}, False),
        (['team=""'], {}, True),  # a missing label reads as ""
        (['severity="warning"'], {}, True),  # the level, unless the alert has a severity label
        (['severity="warning"'], {"severity": "page"}, False),
    ],
)
def test_matchers_follow_alertmanager(
    matchers: list[str], labels: dict[str, str], silenced: bool
) -> None:
    s = silence(matchers)
    assert silenced_by(alert(**labels), [s], NOW) == (s.id if silenced else None)


def test_ad_hoc_silence_covers_starts_at_up_to_but_not_ends_at() -> None:
    s = silence(["alertname=disk_full"], starts_at="2024-06-01T10:00:00+02:00",
                ends_at="2024-06-01T12:00:00+02:00", id="change-4711")  # fmt: skip
    assert silenced_by(alert(), [s], utc(2024, 6, 1, 7, 59, 59)) is None
    assert silenced_by(alert(), [s], utc(2024, 6, 1, 8, 0)) == "change-4711"
    assert silenced_by(alert(), [s], utc(2024, 6, 1, 9, 59, 59)) == "change-4711"
    assert silenced_by(alert(), [s], utc(2024, 6, 1, 10, 0)) is None


def test_first_matching_active_silence_wins_and_ids_are_stable() -> None:
    expired = silence(["alertname=disk_full"], ends_at="2024-01-01T00:00:00Z")
    other = silence(['host="db1"'])
    mine = silence(['alertname=~"disk.*"'])
    assert mine.id == silence(['alertname=~"disk.*"']).id != other.id
    assert mine.id.startswith("silence-")
    assert silenced_by(alert(), [expired, other, mine], NOW) == mine.id
    assert active_silences([expired, other, mine], NOW) == [other, mine]


def test_matchers_round_trip_in_alertmanager_spelling() -> None:
    s = silence(['path="C:\\\\logs \\"old\\""', "host=~web.*"])
    assert [format_matcher(m) for m in s.matchers] == [
        'path="C:\\\\logs \\"old\\""',
        'host=~"web.*"',
    ]
    assert s.matchers[0].value == 'C:\\logs "old"'
    assert SilenceConfig.model_validate(s.model_dump()) == s


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"matchers": ["host web1"]}, "invalid matcher"),
        ({"matchers": ['host=~"("']}, "invalid regular expression"),
        ({"matchers": []}, "at least 1"),
        ({"starts_at": "2024-06-01T10:00:00"}, "UTC offset"),
        ({"ends_at": None}, "set ends_at, or recurring windows"),
        ({"starts_at": "2031-01-01T00:00:00Z"}, "ends_at must be after starts_at"),
        (
            {"recurring": [{"start": "22:00", "end": "23:00", "time_zone": "Moon/Base"}]},
            "unknown time zone",
        ),
        ({"recurring": [{"start": "22:00", "end": "23:00", "weekdays": ["sunday"]}]}, "weekdays"),
        ({"author": "ops", "comment": "x", "mood": "calm"}, "mood"),
    ],
)
def test_bad_silences_are_refused(fields: dict[str, Any], message: str) -> None:
    data = {"matchers": ["alertname=x"], "author": "ops", "comment": "c",
            "ends_at": "2030-01-01T00:00:00Z", **fields}  # fmt: skip
    with pytest.raises(ValidationError, match=message):
        SilenceConfig.model_validate(data)


# ---------------------------------------------------------------------------------------------
# Recurring windows


def test_recurring_silence_is_active_only_in_its_window_and_period() -> None:
    nightly = silence(
        ['alertname="disk_full"'], ends_at="2024-06-30T00:00:00Z",
        recurring=[{"weekdays": ["sat", "sun"], "start": "02:00", "end": "04:00",
                    "time_zone": "Europe/Berlin"}],
    )  # fmt: skip
    assert is_active(nightly, utc(2024, 6, 1, 0, 30))  # Saturday 02:30 CEST
    assert not is_active(nightly, utc(2024, 6, 1, 2, 0))  # 04:00 CEST: the end is exclusive
    assert not is_active(nightly, utc(2024, 6, 3, 0, 30))  # Monday
    assert not is_active(nightly, utc(2024, 7, 6, 0, 30))  # a Saturday after ends_at


def test_spring_forward_berlin_shortens_a_window_and_skips_the_missing_hour() -> None:
    # 2024-03-31 (Sunday): 02:00 CET jumps to 03:00 CEST, at 01:00 UTC
    day_start = utc(2024, 3, 30, 23, 0)  # local midnight (CET)
    across = window("01:00", "04:00", "Europe/Berlin", ["sun"])
    assert minutes_active(across, day_start, 23) == 120  # 3 wall-clock hours, 2 real ones
    assert in_window(across, utc(2024, 3, 31, 0, 0))  # 01:00 CET
    assert in_window(across, utc(2024, 3, 31, 1, 59))  # 03:59 CEST
    assert not in_window(across, utc(2024, 3, 31, 2, 0))  # 04:00 CEST
    assert minutes_active(window("02:00", "02:30", "Europe/Berlin"), day_start, 23) == 0


def test_fall_back_berlin_lengthens_a_window_and_repeats_the_doubled_hour() -> None:
    # 2024-10-27 (Sunday): 03:00 CEST falls back to 02:00 CET, at 01:00 UTC
    day_start = utc(2024, 10, 26, 22, 0)  # local midnight (CEST)
    across = window("01:00", "04:00", "Europe/Berlin", ["sun"])
    assert minutes_active(across, day_start, 25) == 240
    assert not in_window(across, utc(2024, 10, 26, 22, 59))  # 00:59 CEST
    assert in_window(across, utc(2024, 10, 26, 23, 0))  # 01:00 CEST
    assert not in_window(across, utc(2024, 10, 27, 3, 0))  # 04:00 CET
    doubled = window("02:00", "02:30", "Europe/Berlin", ["sun"])
    assert minutes_active(doubled, day_start, 25) == 60  # 02:00-02:30 CEST, then CET
    assert in_window(doubled, utc(2024, 10, 27, 0, 15))  # 02:15 CEST
    assert in_window(doubled, utc(2024, 10, 27, 1, 15))  # 02:15 CET


def test_overnight_window_across_new_york_spring_forward() -> None:
    # Saturday 22:00 EST to Sunday 02:00 local; on 2024-03-10 02:00 EST jumps to 03:00 EDT
    w = window("22:00", "02:00", "America/New_York", ["sat"])
    assert not in_window(w, utc(2024, 3, 10, 2, 59))  # Sat 21:59 EST
    assert in_window(w, utc(2024, 3, 10, 3, 0))  # Sat 22:00 EST
    assert in_window(w, utc(2024, 3, 10, 6, 59))  # Sun 01:59 EST
    assert not in_window(w, utc(2024, 3, 10, 7, 0))  # Sun 03:00 EDT
    assert minutes_active(w, utc(2024, 3, 9, 12, 0), 36) == 240
    # the same window a week later, all in EDT, is four real hours too
    assert minutes_active(w, utc(2024, 3, 16, 12, 0), 36) == 240


def test_overnight_tail_belongs_to_the_previous_day() -> None:
    w = window("23:00", "01:00", "UTC", ["fri"])
    assert in_window(w, utc(2024, 6, 7, 23, 30))  # Friday night
    assert in_window(w, utc(2024, 6, 8, 0, 30))  # Saturday early: Friday's window
    assert not in_window(w, utc(2024, 6, 8, 23, 30))  # Saturday night
    assert not in_window(w, utc(2024, 6, 7, 0, 30))  # Friday early: Thursday's window


@given(
    days=st.sets(st.sampled_from(WEEKDAYS), min_size=1),
    start=st.integers(0, 23), length=st.integers(1, 24),
)  # fmt: skip
def test_without_dst_a_week_holds_days_times_length(
    days: set[str], start: int, length: int
) -> None:
    end = (start + length) % 24
    w = RecurringWindow(weekdays=sorted(days), start=time(start), end=time(end))  # type: ignore[arg-type]
    monday = utc(2024, 6, 3)
    active = sum(in_window(w, monday + 3600 * h + 1800) for h in range(7 * 24))
    assert active == len(days) * length
