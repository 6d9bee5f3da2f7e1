"""The risk matrix: how likely by how bad → risk level, priority and action policy (pure).

Likelihood (rare … almost_certain) comes from the alert's level, or for a predicted warning from
how soon the threshold will be reached (time to threshold ÷ horizon) and how sure the fit is
(R² and number of points). Impact (low … critical) is the higher of the asset's criticality
and the rule's own impact. The matrix in `RiskConfig` maps the pair to a risk level; the risk
level (or an override for that one cell) gives the priority and the action policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from agent.evaluate import Fit
from agent.model import Alert, Labels, Priority
from agent.risk_config import (
    AssetConfig,
    Impact,
    Likelihood,
    Policy,
    PredictionLikelihood,
    RiskConfig,
    RiskLevel,
)

_LIKELIHOODS = list(Likelihood)
_IMPACTS = frozenset(i.value for i in Impact)


@dataclass(frozen=True, slots=True)
class Prediction:
    """A predicted warning: when its threshold will be reached and how well the line fits."""

    seconds: float
    """Time to threshold."""
    horizon: float
    """How far ahead the rule looks (e.g. 4 h for "full within 4 h")."""
    r2: float
    points: int


@dataclass(frozen=True, slots=True)
class Assessment:
    """Where an alert sits in the matrix, and what that asks of the people and the agent."""

    likelihood: Likelihood
    impact: Impact
    risk: RiskLevel
    priority: Priority
    policy: Policy
    response_within: float
    """Seconds to first response for the priority (P1 2 h, P2 4 h, P3 8 h by default)."""
    resolve_within: float


def assess(
    alert: Alert,
    rule_impact: Impact | None,
    asset_criticality: Impact | None,
    matrix: RiskConfig,
    prediction: Prediction | None = None,
) -> Assessment:
    """Rate `alert` by likelihood and impact in the configured matrix."""
    likelihood = likelihood_of(alert, matrix, prediction)
    impact = impact_of(rule_impact, asset_criticality, matrix.default_impact)
    risk = matrix.matrix[likelihood][impact]
    priority, policy = response(matrix, likelihood, impact, risk)
    sla = matrix.priorities[priority]
    return Assessment(likelihood, impact, risk, priority, policy, sla.response, sla.resolution)


def likelihood_of(alert: Alert, matrix: RiskConfig, prediction: Prediction | None) -> Likelihood:
    """From the prediction when there is one, else from the alert's level."""
    if prediction is not None:
        return predicted_likelihood(prediction, matrix.prediction)
    return matrix.likelihood[alert.level]


def predicted_likelihood(prediction: Prediction, config: PredictionLikelihood) -> Likelihood:
    """Sooner is likelier; a weak fit or few points lowers it one or two steps (not below rare)."""
    ratio = prediction.seconds / prediction.horizon if prediction.horizon > 0 else 0.0
    if ratio <= config.likely_within:
        soon = Likelihood.LIKELY
    elif ratio <= config.possible_within:
        soon = Likelihood.POSSIBLE
    else:
        soon = Likelihood.UNLIKELY if ratio <= 1 else Likelihood.RARE
    sure = prediction.r2 >= config.confident_r2 and prediction.points >= config.min_points
    doubt = 0 if sure else 2 if prediction.r2 < config.weak_r2 else 1
    return _LIKELIHOODS[max(0, _LIKELIHOODS.index(soon) - doubt)]


def impact_of(rule_impact: Impact | None, asset: Impact | None, default: Impact) -> Impact:
    """The higher of what the rule and the asset say (a risk register errs high), else default."""
    given = [i for i in (rule_impact, asset) if i is not None]
    return max(given, key=lambda i: i.rank) if given else default


def response(
    matrix: RiskConfig, likelihood: Likelihood, impact: Impact, risk: RiskLevel
) -> tuple[Priority, Policy]:
    """The risk level's priority and policy, unless an override names this very cell."""
    base = matrix.responses[risk]
    priority, policy = base.priority, base.policy
    for cell in matrix.overrides:
        if (cell.likelihood, cell.impact) == (likelihood, impact):
            priority, policy = cell.priority or priority, cell.policy or policy
    return priority, policy


def asset_criticality(labels: Mapping[str, str], assets: Sequence[AssetConfig]) -> Impact | None:
    """The highest criticality of the assets the labels match, or of a `criticality` label."""
    found = [a.criticality for a in assets if all(labels.get(k) == v for k, v in a.match.items())]
    own = labels.get("criticality", "")
    if own in _IMPACTS:
        found.append(Impact(own))
    return max(found, key=lambda i: i.rank) if found else None


def prediction_for(alert: Alert, fits: Mapping[Labels, Fit], horizon: float) -> Prediction | None:
    """Pair a `time_to_threshold` alert with the fit of the series it came from."""
    labels = set(alert.labels)
    mine = [(len(k), fit) for k, fit in fits.items() if labels.issuperset(k)]
    if not mine:
        return None
    fit = max(mine, key=lambda pair: pair[0])[1]  # the most specific series wins
    return Prediction(alert.value, horizon, fit.r2, fit.points)


def apply(alert: Alert, assessment: Assessment) -> Alert:
    """The alert carrying its likelihood, impact, risk and priority."""
    return replace(
        alert,
        likelihood=assessment.likelihood.value,
        impact=assessment.impact.value,
        risk=assessment.risk.value,
        priority=assessment.priority,
    )
