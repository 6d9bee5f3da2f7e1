"""The risk matrix: likelihood from levels and predictions, impact from assets, cell overrides."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.evaluate import Fit
from agent.model import Alert, AlertState, Level, Priority, make_labels
from agent.risk import (
    Assessment,
    Prediction,
    apply,
    assess,
    asset_criticality,
    impact_of,
    predicted_likelihood,
    prediction_for,
)
from agent.risk_config import (
    AssetConfig,
    Impact,
    Likelihood,
    Policy,
    PredictionLikelihood,
    RiskConfig,
    RiskLevel,
)

T0 = 1_700_000_000.0
DEFAULTS = RiskConfig()
HOUR = 3600.0


def alert(level: Level = Level.WARNING, value: float = 90.0, **labels: str) -> Alert:
    return Alert(
        fingerprint="f1", rule="disk_full", state=AlertState.FIRING, level=level,
        labels=make_labels({"alertname": "disk_full", **labels}), annotations=(),
        value=value, starts_at=T0,
    )  # fmt: skip


def test_a_crossed_critical_threshold_on_a_critical_asset_is_p1_urgent() -> None:
    result = assess(alert(Level.CRITICAL), None, Impact.CRITICAL, DEFAULTS)
    assert result == Assessment(
        Likelihood.ALMOST_CERTAIN, Impact.CRITICAL, RiskLevel.CRITICAL, Priority.P1,
        Policy.APPROVAL, response_within=2 * HOUR, resolve_within=8 * HOUR,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("level", "priority"),
    [(Level.CRITICAL, Priority.P1), (Level.WARNING, Priority.P2), (Level.INFO, Priority.P3)],
)
def test_on_an_asset_of_default_impact_the_level_sets_the_priority(
    level: Level, priority: Priority
) -> None:
    # critical -> P1 urgent (2 h), warning -> P2 important (4 h), info -> P3 general (8 h)
    assert assess(alert(level), None, None, DEFAULTS).priority is priority


@pytest.mark.parametrize(
    ("level", "impact", "risk", "priority", "policy"),
    [
        (Level.INFO, Impact.LOW, RiskLevel.LOW, Priority.P3, Policy.AUTO),
        (Level.INFO, Impact.HIGH, RiskLevel.HIGH, Priority.P2, Policy.APPROVAL),
        (Level.WARNING, Impact.LOW, RiskLevel.MEDIUM, Priority.P3, Policy.APPROVAL),
        (Level.WARNING, Impact.MEDIUM, RiskLevel.HIGH, Priority.P2, Policy.APPROVAL),
        (Level.WARNING, Impact.CRITICAL, RiskLevel.CRITICAL, Priority.P1, Policy.APPROVAL),
        (Level.CRITICAL, Impact.LOW, RiskLevel.MEDIUM, Priority.P3, Policy.APPROVAL),
        (Level.CRITICAL, Impact.HIGH, RiskLevel.CRITICAL, Priority.P1, Policy.APPROVAL),
    ],
)
def test_default_matrix_cells(
    level: Level, impact: Impact, risk: RiskLevel, priority: Priority, policy: Policy
) -> None:
    result = assess(alert(level), impact, None, DEFAULTS)
    assert (result.risk, result.priority, result.policy) == (risk, priority, policy)


def test_without_rule_or_asset_impact_the_default_impact_applies() -> None:
    assert assess(alert(), None, None, DEFAULTS).impact is Impact.MEDIUM
    config = RiskConfig(default_impact=Impact.LOW)
    assert assess(alert(), None, None, config).impact is Impact.LOW


def test_impact_is_the_higher_of_rule_and_asset() -> None:
    assert impact_of(Impact.LOW, Impact.HIGH, Impact.MEDIUM) is Impact.HIGH
    assert impact_of(Impact.CRITICAL, Impact.LOW, Impact.MEDIUM) is Impact.CRITICAL
    assert impact_of(Impact.LOW, None, Impact.MEDIUM) is Impact.LOW


def test_asset_criticality_from_matching_assets_and_the_label() -> None:
    assets = [
        AssetConfig(match={"host": "core1"}, criticality=Impact.HIGH),
        AssetConfig(match={"host": "core1", "ifName": "xe-0/0/1"}, criticality=Impact.CRITICAL),
        AssetConfig(match={"host": "lab"}, criticality=Impact.LOW),
    ]
    assert asset_criticality({"host": "core1", "ifName": "ge-1"}, assets) is Impact.HIGH
    assert asset_criticality({"host": "core1", "ifName": "xe-0/0/1"}, assets) is Impact.CRITICAL
    assert asset_criticality({"host": "web1"}, assets) is None
    assert asset_criticality({"host": "lab", "criticality": "high"}, assets) is Impact.HIGH
    assert asset_criticality({"criticality": "enormous"}, assets) is None


def test_cell_override_changes_only_that_cell() -> None:
    config = RiskConfig.model_validate(
        {"overrides": [{"likelihood": "likely", "impact": "high", "policy": "ticket_only"}]}
    )
    overridden = assess(alert(Level.WARNING), Impact.HIGH, None, config)
    assert (overridden.risk, overridden.priority, overridden.policy) == (
        RiskLevel.HIGH, Priority.P2, Policy.TICKET_ONLY,
    )  # fmt: skip
    assert assess(alert(Level.INFO), Impact.HIGH, None, config).policy is Policy.APPROVAL


def test_priorities_response_times_are_configurable() -> None:
    config = RiskConfig.model_validate(
        {"priorities": {"P1": {"response": "30m", "resolution": "4h"},
                        "P2": {"response": "4h", "resolution": "1d"},
                        "P3": {"response": "8h", "resolution": "3d"}}}
    )  # fmt: skip
    result = assess(alert(Level.CRITICAL), Impact.CRITICAL, None, config)
    assert (result.response_within, result.resolve_within) == (1800.0, 4 * HOUR)


def test_tables_in_yaml_change_only_the_cells_they_name() -> None:
    config = RiskConfig.model_validate(
        {"matrix": {"rare": {"low": "medium"}}, "priorities": {"P1": {"response": "30m"}},
         "responses": {"low": {"policy": "ticket_only"}}}
    )  # fmt: skip
    assert config.matrix[Likelihood.RARE][Impact.LOW] is RiskLevel.MEDIUM
    assert config.matrix[Likelihood.RARE][Impact.MEDIUM] is RiskLevel.LOW
    assert config.matrix[Likelihood.LIKELY] == DEFAULTS.matrix[Likelihood.LIKELY]
    assert (config.priorities[Priority.P1].response, config.priorities[Priority.P1].resolution) == (
        1800.0, 8 * HOUR,
    )  # fmt: skip
    assert config.responses[RiskLevel.LOW].priority is Priority.P3
    assert config.responses[RiskLevel.LOW].policy is Policy.TICKET_ONLY


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"matrix": {"rarely": {"low": "low"}}}, "matrix.rarely"),
        ({"matrix": {"rare": {"low": "dire"}}}, "matrix.rare.low"),
        ({"likelihood": {"warning": "sure"}}, "likelihood.warning"),
        ({"responses": {"high": {"policy": "yolo"}}}, "responses.high.policy"),
        ({"prediction": {"likely_within": 0.8}}, "likely_within <= possible_within"),
        ({"matrix_": {}}, "matrix_"),
    ],
)
def test_bad_risk_tables_are_reported_with_their_path(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        RiskConfig.model_validate(data)
    text = str(caught.value).replace("\n  ", ".").replace("\n", " ")
    assert message in text


# ---------------------------------------------------------------------------------------------
# Predicted warnings


@pytest.mark.parametrize(
    ("seconds", "r2", "points", "expected"),
    [
        (0.5 * HOUR, 0.95, 30, Likelihood.LIKELY),  # within a quarter of the 4 h horizon
        (1.5 * HOUR, 0.95, 30, Likelihood.POSSIBLE),
        (3.5 * HOUR, 0.95, 30, Likelihood.UNLIKELY),
        (5.0 * HOUR, 0.95, 30, Likelihood.RARE),
        (0.5 * HOUR, 0.95, 5, Likelihood.POSSIBLE),  # good fit, too few points: one step
        (0.5 * HOUR, 0.7, 30, Likelihood.POSSIBLE),  # middling fit: one step
        (0.5 * HOUR, 0.2, 30, Likelihood.UNLIKELY),  # poor fit: two steps
        (3.5 * HOUR, 0.2, 30, Likelihood.RARE),  # never below rare
    ],
)
def test_prediction_likelihood_from_how_soon_and_how_sure(
    seconds: float, r2: float, points: int, expected: Likelihood
) -> None:
    prediction = Prediction(seconds, 4 * HOUR, r2, points)
    assert predicted_likelihood(prediction, PredictionLikelihood()) is expected


def test_a_prediction_never_reaches_almost_certain() -> None:
    sure = Prediction(0.0, 4 * HOUR, 1.0, 1000)
    result = assess(alert(Level.CRITICAL), None, Impact.HIGH, DEFAULTS, sure)
    assert (result.likelihood, result.risk) == (Likelihood.LIKELY, RiskLevel.HIGH)


@given(
    seconds=st.floats(0, 10 * HOUR), r2=st.floats(0, 1), points=st.integers(2, 500),
    later=st.floats(0, 10 * HOUR), better=st.floats(0, 1),
)  # fmt: skip
def test_prediction_likelihood_is_monotonic(
    seconds: float, r2: float, points: int, later: float, better: float
) -> None:
    config = PredictionLikelihood()

    def rank(p: Prediction) -> int:
        return predicted_likelihood(p, config).rank

    base = Prediction(seconds, 4 * HOUR, r2, points)
    assert rank(Prediction(seconds + later, 4 * HOUR, r2, points)) <= rank(base)
    assert rank(Prediction(seconds, 4 * HOUR, max(r2, better), points)) >= rank(base)


def test_prediction_for_pairs_the_alert_with_its_series_fit() -> None:
    fits = {
        make_labels({"mountpoint": "/"}): Fit(-0.1, 500.0, 0.97, 24),
        make_labels({"mountpoint": "/var"}): Fit(-0.2, 900.0, 0.4, 24),
    }
    mine = alert(value=1800.0, mountpoint="/var", host="web1")
    assert prediction_for(mine, fits, 4 * HOUR) == Prediction(1800.0, 4 * HOUR, 0.4, 24)
    assert prediction_for(alert(mountpoint="/srv"), fits, 4 * HOUR) is None


def test_apply_puts_the_assessment_on_the_alert() -> None:
    result = assess(alert(Level.WARNING), Impact.HIGH, None, DEFAULTS)
    rated = apply(alert(Level.WARNING), result)
    assert (rated.likelihood, rated.impact, rated.risk, rated.priority) == (
        "likely", "high", "high", Priority.P2,
    )  # fmt: skip
