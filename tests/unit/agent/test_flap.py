"""Flap detection: Nagios' weighted percent state change with high/low hysteresis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.config import RuleConfig
from agent.flap import FlapState, observations, observe, percent_state_change, track
from agent.model import Alert, AlertState, Level, make_labels
from agent.risk_config import FlapConfig
from agent.rules import compile_rules

W = Level.WARNING
C = Level.CRITICAL


def run(levels: list[Level | None], settings: FlapConfig = FlapConfig()) -> list[FlapState]:
    states: list[FlapState] = []
    for level in levels:
        states.append(observe(states[-1] if states else None, "r", level, settings))
    return states


def test_weights_run_from_point_eight_to_one_point_two() -> None:
    # 21 states, 20 transitions: the oldest change weighs 0.8, the newest 1.2
    oldest = [1] + [0] * 20
    newest = [0] * 20 + [1]
    assert percent_state_change(oldest, 21) == pytest.approx(0.8 * 100 / 20)
    assert percent_state_change(newest, 21) == pytest.approx(1.2 * 100 / 20)
    alternating = [i % 2 for i in range(21)]
    assert percent_state_change(alternating, 21) == pytest.approx(100.0)
    assert percent_state_change([0] * 21, 21) == 0.0


def test_matches_the_nagios_formula_for_a_mixed_history() -> None:
    history = [0, 0, 2, 2, 0, 0, 0, 3, 3, 2, 2, 2, 0, 0, 0, 0, 0, 2, 0, 0, 0]
    changes = [x for x in range(1, 21) if history[x] != history[x - 1]]
    nagios = sum((x - 1) * 0.4 / 19 + 0.8 for x in changes) * 100 / 20
    assert percent_state_change(history, 21) == pytest.approx(nagios)


def test_short_history_is_padded_with_its_first_state() -> None:
    # two evaluations with one change are not "100 % flapping"
    assert percent_state_change([0, 2], 21) == pytest.approx(1.2 * 100 / 20)
    assert percent_state_change([], 21) == 0.0


def test_alternating_alert_starts_flapping_at_high_and_stops_at_low() -> None:
    states = run([W, None] * 15 + [None] * 21)
    flapping = [s.flapping for s in states]
    first = flapping.index(True)
    assert states[first].percent >= 50 > states[first - 1].percent
    stop = flapping.index(False, first)
    assert states[stop].percent <= 25 < states[stop - 1].percent
    assert all(flapping[first:stop])
    assert states[-1].percent == 0.0


def test_between_thresholds_the_flap_state_holds() -> None:
    settings = FlapConfig(high=40, low=20)
    state = FlapState("r", history=tuple([0, 2] * 10 + [0]), percent=100, flapping=True)
    steady = [observe(state, "r", None, settings)]
    for _ in range(12):
        steady.append(observe(steady[-1], "r", None, settings))
    mid = [s for s in steady if 20 < s.percent < 40]
    assert mid and all(s.flapping for s in mid)
    flat = FlapState("r", history=tuple([0] * 14 + [0, 2, 0, 2, 0, 2, 0]), flapping=False)
    assert 20 < percent_state_change(flat.history, 21) < 40
    assert not observe(flat, "r", None, settings).flapping  # one unchanged state: still mid-band


def test_level_changes_count_as_state_changes() -> None:
    assert run([W, C] * 11)[-1].flapping


def test_disabled_flap_detection_never_flaps_but_still_counts() -> None:
    states = run([W, None] * 15, FlapConfig(enabled=False))
    assert not any(s.flapping for s in states)
    assert states[-1].percent == pytest.approx(100.0)


def test_window_is_configurable() -> None:
    small = FlapConfig(window=5, high=60, low=30)
    states = run([W, None, W, None, W], small)
    assert len(states[-1].history) == 5 and states[-1].flapping
    assert percent_state_change([1, 0, 1, 0, 1], 5) == pytest.approx(100.0)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="low must be below high"):
        FlapConfig(high=30, low=30)
    with pytest.raises(ValidationError):
        FlapConfig(window=2)


def test_track_counts_unseen_alerts_as_fine_and_forgets_quiet_ones() -> None:
    settings = {"disk": FlapConfig(window=3, high=60, low=30)}
    states = track({}, {"a": ("disk", W), "b": ("disk", None)}, settings)
    assert set(states) == {"a"}  # nothing to remember about an alert only ever fine
    states = track(states, {}, settings)
    assert states["a"].history == (2, 0)
    states = track(track(states, {}, settings), {}, settings)
    assert states == {}


def test_track_uses_each_rules_settings_or_the_default() -> None:
    settings = {"fast": FlapConfig(window=3, high=60, low=30)}
    states: dict[str, FlapState] = {}
    for i in range(3):
        level = W if i % 2 == 0 else None
        states = track(states, {"f": ("fast", level), "d": ("other", level)}, settings)
    assert states["f"].flapping and len(states["f"].history) == 3
    assert not states["d"].flapping and states["d"].percent == pytest.approx(
        (0.8 + 0.4 * 18 / 19 + 1.2) * 100 / 20  # padded to 21: the last two transitions
    )


def test_observations_use_the_raw_value_not_the_hysteresis() -> None:
    config = RuleConfig.model_validate(
        {"name": "disk", "expr": "x", "warning": 80, "critical": 90, "clear": 70}
    )
    rules = {r.name: r for r in compile_rules([config])}

    def alert(fp: str, value: float, state: AlertState = AlertState.FIRING) -> Alert:
        return Alert(fp, "disk", state, W, make_labels({}), (), value, 0.0)

    seen = observations(
        [alert("a", 95), alert("b", 75), alert("c", 85), alert("d", 95, AlertState.RESOLVED)],
        rules,
    )
    assert seen == {"a": ("disk", C), "b": ("disk", None), "c": ("disk", W), "d": ("disk", None)}


@given(st.lists(st.sampled_from([None, W, C]), max_size=60))
def test_percent_stays_within_bounds(levels: list[Level | None]) -> None:
    for state in run(levels):
        assert 0.0 <= state.percent <= 100.0 + 1e-9
        assert len(state.history) <= 21
