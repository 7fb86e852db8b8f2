"""Offline evaluation of uplift models on held-out randomized data.

Per coupon arm against control (rows that received either): the Qini curve (points for a
chart), the normalized Qini coefficient, the normalized area under the uplift curve (AUUC) and
uplift at the top k %, each with a 95 % bootstrap interval; calibration of predicted
conversion; and the value of a policy (an arm or control per customer) by inverse-propensity
weighting and doubly-robust estimation, each with a 95 % confidence interval from the per-row
influence values (normal approximation).

Definitions follow scikit-uplift (``sklift.metrics``) so the figures can be compared:

- ``qini_curve`` / ``qini_coefficient`` = ``sklift.metrics.qini_curve`` / ``qini_auc_score``
  (negative_effect=True): Q(k) = Y_t(k) - Y_c(k) N_t(k) / N_c(k) over the top k customers by
  score, points only where the score changes (ties are one step, i.e. averaged); the
  coefficient is (area - random area) / (perfect area - random area), where the random curve is
  the straight line to the last point and the perfect curve ranks treated responders first and
  control responders last.
- ``auuc`` = ``sklift.metrics.uplift_auc_score``: the same normalization on the uplift curve
  U(k) = (Y_t(k)/N_t(k) - Y_c(k)/N_c(k)) k.
- ``uplift_at_k`` = ``sklift.metrics.uplift_at_k(strategy="overall")``: conversion rate of the
  treated minus that of the control among the top int(k n) rows.

Differences: the chart points (``qini_curve_points``) are on the share of customers (0..1,
at most 101 points, linearly interpolated) and scaled per customer (Qini / n) so curves of
different test sizes compare; sklift does not reweight by propensity, nor do these curves (they
assume the arms were assigned uniformly within the compared pair, as in the randomized
holdout); the policy value does reweight. ``true_qini_coefficient`` (not in sklift) scores a
ranking against known true uplifts (simulated data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "Estimate",
    "PolicyDifference",
    "PolicyValue",
    "auuc",
    "calibration",
    "evaluate_uplift",
    "policy_value",
    "policy_value_difference",
    "qini_coefficient",
    "qini_curve",
    "qini_curve_points",
    "ranking_metric_intervals",
    "ranking_metrics_weighted",
    "true_qini_coefficient",
    "uplift_at_k",
    "uplift_curve",
]

_Z95 = 1.959963984540054


def _arrays(y, score, treatment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    treatment = np.asarray(treatment).astype(bool)
    if not len(y) == len(score) == len(treatment):
        raise ValueError("y, score and treatment must have the same length")
    return y, score, treatment


def _cumulative(y, score, treatment):
    """Cumulative counts at every distinct score threshold, best score first."""
    order = np.argsort(score, kind="mergesort")[::-1]
    y, score, treatment = y[order], score[order], treatment[order]
    thresholds = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    n_all = (thresholds + 1).astype(np.float64)
    n_t = np.cumsum(treatment, dtype=np.float64)[thresholds]
    y_t = np.cumsum(y * treatment)[thresholds]
    y_c = np.cumsum(y * ~treatment)[thresholds]
    return n_all, n_t, n_all - n_t, y_t, y_c


def _start_at_origin(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.r_[0.0, x], np.r_[0.0, v]


def qini_curve(y, score, treatment) -> tuple[np.ndarray, np.ndarray]:
    """(number targeted, Qini value) at each distinct score, starting at (0, 0)."""
    y, score, treatment = _arrays(y, score, treatment)
    if len(y) == 0:
        return np.zeros(1), np.zeros(1)
    n_all, n_t, n_c, y_t, y_c = _cumulative(y, score, treatment)
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    return _start_at_origin(n_all, y_t - y_c * ratio)


def uplift_curve(y, score, treatment) -> tuple[np.ndarray, np.ndarray]:
    """(number targeted, uplift x number targeted) at each distinct score, from (0, 0)."""
    y, score, treatment = _arrays(y, score, treatment)
    if len(y) == 0:
        return np.zeros(1), np.zeros(1)
    n_all, n_t, n_c, y_t, y_c = _cumulative(y, score, treatment)
    rate_t = np.divide(y_t, n_t, out=np.zeros_like(y_t), where=n_t != 0)
    rate_c = np.divide(y_c, n_c, out=np.zeros_like(y_c), where=n_c != 0)
    return _start_at_origin(n_all, (rate_t - rate_c) * n_all)


def _area(x: np.ndarray, v: np.ndarray) -> float:
    return float(np.trapezoid(v, x))


def _normalized(curve, y, score, treatment, perfect_score) -> float:
    x, v = curve(y, score, treatment)
    xp, vp = curve(y, perfect_score, treatment)
    random_area = _area(np.array([0.0, xp[-1]]), np.array([0.0, vp[-1]]))
    perfect = _area(xp, vp) - random_area
    if perfect == 0:
        return float("nan")
    return (_area(x, v) - random_area) / perfect


def qini_coefficient(y, score, treatment) -> float:
    """Normalized area between the Qini curve and the random line (sklift ``qini_auc_score``
    with negative_effect=True): 1 = perfect ranking, 0 = random, negative = worse."""
    y, score, treatment = _arrays(y, score, treatment)
    perfect_score = y * treatment - y * ~treatment
    return _normalized(qini_curve, y, score, treatment, perfect_score)


def auuc(y, score, treatment) -> float:
    """Normalized area under the uplift curve (sklift ``uplift_auc_score``)."""
    y, score, treatment = _arrays(y, score, treatment)
    control_responders = np.sum((y == 1) & ~treatment)
    treated_nonresponders = np.sum((y == 0) & treatment)
    summand = y if control_responders > treated_nonresponders else treatment.astype(np.float64)
    perfect_score = 2.0 * (y == treatment) + summand
    return _normalized(uplift_curve, y, score, treatment, perfect_score)


def uplift_at_k(y, score, treatment, k: float) -> float:
    """Treated minus control conversion rate among the top int(k n) rows by score."""
    y, score, treatment = _arrays(y, score, treatment)
    if not 0 < k < 1:
        raise ValueError("k must be within (0, 1)")
    top = np.argsort(score, kind="mergesort")[::-1][: int(len(y) * k)]
    treated, control = top[treatment[top]], top[~treatment[top]]
    if len(treated) == 0 or len(control) == 0:
        return float("nan")
    return float(y[treated].mean() - y[control].mean())


# ---------------------------------------------------------------------------------------------
# Bootstrap intervals for the ranking metrics
# ---------------------------------------------------------------------------------------------
BOOTSTRAP_REPLICATES = 200
_BOOTSTRAP_BATCH_CELLS = 4_000_000  # replicates x rows per batch: about 32 MB of float64


class _Ranked:
    """One ranking of rows, best score first, with its tie groups: the positions where a run
    of equal scores ends. Weighted statistics over it (below) equal the unweighted ones on the
    rows repeated by their integer weights, so Poisson weights give a bootstrap without
    re-sorting each replicate."""

    def __init__(self, score: np.ndarray, y: np.ndarray, treatment: np.ndarray) -> None:
        order = np.argsort(score, kind="mergesort")[::-1]
        self.order = order
        self.y = y[order]
        self.t = treatment[order].astype(np.float64)
        self.ends = np.r_[np.flatnonzero(np.diff(score[order])), len(order) - 1]

    def sums(self, w: np.ndarray):
        """Weighted cumulative (n_all, n_t, n_c, y_t, y_c) at the tie ends, per replicate."""
        w = w[:, self.order]
        n_all = np.cumsum(w, axis=1)
        wt = w * self.t
        n_t = np.cumsum(wt, axis=1)
        y_t = np.cumsum(wt * self.y, axis=1)
        y_c = np.cumsum((w - wt) * self.y, axis=1)
        n_all, n_t, y_t, y_c = (a[:, self.ends] for a in (n_all, n_t, y_t, y_c))
        return n_all, n_t, n_all - n_t, y_t, y_c


def _curve_area(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Trapezoid area of each replicate's curve from (0, 0) and its random-line area."""
    x0 = np.concatenate([np.zeros((len(x), 1)), x], axis=1)
    v0 = np.concatenate([np.zeros((len(v), 1)), v], axis=1)
    area = np.trapezoid(v0, x0, axis=1)
    return area, 0.5 * x[:, -1] * v[:, -1]


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def _qini_values(sums) -> tuple[np.ndarray, np.ndarray]:
    n_all, n_t, n_c, y_t, y_c = sums
    return n_all, y_t - y_c * _ratio(n_t, n_c)


def _uplift_values(sums) -> tuple[np.ndarray, np.ndarray]:
    n_all, n_t, n_c, y_t, y_c = sums
    return n_all, (_ratio(y_t, n_t) - _ratio(y_c, n_c)) * n_all


def _normalized_weighted(values, ranked: _Ranked, perfect: _Ranked, w) -> np.ndarray:
    area, _ = _curve_area(*values(ranked.sums(w)))
    perfect_area, random_area = _curve_area(*values(perfect.sums(w)))
    best = perfect_area - random_area
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(best != 0, (area - random_area) / best, np.nan)


def _uplift_at_k_weighted(ranked: _Ranked, w: np.ndarray, k: float) -> np.ndarray:
    """uplift_at_k on the rows repeated by their weights: the first int(k N) copies in rank
    order, a row's copies cut where the count runs out."""
    w = w[:, ranked.order]
    cutoff = np.floor(k * w.sum(axis=1, keepdims=True))
    before = np.cumsum(w, axis=1) - w
    taken = np.clip(cutoff - before, 0.0, w)
    n_t = (taken * ranked.t).sum(axis=1)
    n_c = (taken * (1.0 - ranked.t)).sum(axis=1)
    y_t = (taken * ranked.t * ranked.y).sum(axis=1)
    y_c = (taken * (1.0 - ranked.t) * ranked.y).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_t > 0) & (n_c > 0), y_t / n_t - y_c / n_c, np.nan)


def ranking_metrics_weighted(
    y, score, treatment, weights, ks: Sequence[float] = (0.1, 0.2, 0.3)
) -> dict[str, np.ndarray]:
    """The Qini coefficient, AUUC and uplift at each k, once per row of ``weights`` [B, n]
    (non-negative integer weights: the statistic of the rows repeated that many times)."""
    y, score, treatment = _arrays(y, score, treatment)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    ranked = _Ranked(score, y, treatment)
    qini_perfect = _Ranked(y * treatment - y * ~treatment, y, treatment)
    out = {"qini_coefficient": _normalized_weighted(_qini_values, ranked, qini_perfect, w)}
    # AUUC's perfect ranking depends on which count is larger, per replicate (see auuc()).
    control_responders = (w * ((y == 1) & ~treatment)).sum(axis=1)
    treated_nonresponders = (w * ((y == 0) & treatment)).sum(axis=1)
    by_y = _Ranked(2.0 * (y == treatment) + y, y, treatment)
    by_t = _Ranked(2.0 * (y == treatment) + treatment, y, treatment)
    out["auuc"] = np.where(
        control_responders > treated_nonresponders,
        _normalized_weighted(_uplift_values, ranked, by_y, w),
        _normalized_weighted(_uplift_values, ranked, by_t, w),
    )
    for k in ks:
        out[f"uplift_at_{round(k * 100)}"] = _uplift_at_k_weighted(ranked, w, k)
    return out


def ranking_metric_intervals(
    y,
    score,
    treatment,
    ks: Sequence[float] = (0.1, 0.2, 0.3),
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = 0,
) -> dict[str, list[float | None]]:
    """95 % percentile-bootstrap intervals ``[low, high]`` of the Qini coefficient, AUUC and
    uplift at each k. Each replicate resamples the rows through Poisson(1) weights (the Poisson
    bootstrap), so the rows are ranked once and every replicate is a vectorized weighted sum;
    replicates run in batches to keep memory flat. Deterministic by ``seed``."""
    y, score, treatment = _arrays(y, score, treatment)
    n = len(y)
    names = ["qini_coefficient", "auuc", *(f"uplift_at_{round(k * 100)}" for k in ks)]
    if n < 2 or replicates < 2:
        return {name: [None, None] for name in names}
    rng = np.random.default_rng(seed)
    batch = max(1, min(replicates, _BOOTSTRAP_BATCH_CELLS // n))
    draws: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, replicates, batch):
        weights = rng.poisson(1.0, size=(min(batch, replicates - start), n))
        for name, values in ranking_metrics_weighted(y, score, treatment, weights, ks).items():
            draws[name].append(values)
    intervals: dict[str, list[float | None]] = {}
    for name in names:
        values = np.concatenate(draws[name])
        values = values[np.isfinite(values)]
        if len(values) < replicates // 2:  # mostly undefined (e.g. an arm without responders)
            intervals[name] = [None, None]
        else:
            low, high = np.percentile(values, [2.5, 97.5])
            intervals[name] = [float(low), float(high)]
    return intervals


def qini_curve_points(y, score, treatment, max_points: int = 101) -> dict[str, list[float]]:
    """Qini curve for a chart: at most ``max_points`` points on the share targeted (0..1), Qini
    per customer (Q / n), with the random line and the perfect curve at the same shares."""
    y, score, treatment = _arrays(y, score, treatment)
    n = max(len(y), 1)
    share = np.linspace(0.0, 1.0, max(2, min(max_points, len(y) + 1)))
    x, v = qini_curve(y, score, treatment)
    xp, vp = qini_curve(y, y * treatment - y * ~treatment, treatment)
    total = v[-1] / n
    return {
        "share": share.tolist(),
        "qini": (np.interp(share * n, x, v) / n).tolist(),
        "random": (share * total).tolist(),
        "perfect": (np.interp(share * n, xp, vp) / n).tolist(),
    }


def true_qini_coefficient(true_uplift, score) -> float:
    """How well ``score`` ranks customers by their KNOWN uplift: the area between the curve of
    cumulative true uplift (customers taken best score first, ties as one step) and the random
    line, over the same area for the ranking by the true uplift itself."""
    true_uplift = np.asarray(true_uplift, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)

    def area(rank_by: np.ndarray) -> float:
        order = np.argsort(rank_by, kind="mergesort")[::-1]
        thresholds = np.r_[np.flatnonzero(np.diff(rank_by[order])), len(order) - 1]
        x = np.r_[0.0, thresholds + 1.0]
        v = np.r_[0.0, np.cumsum(true_uplift[order])[thresholds]]
        return _area(x, v) - 0.5 * x[-1] * v[-1]

    perfect = area(true_uplift)
    return float("nan") if perfect == 0 else area(score) / perfect


def calibration(p_pred, y, n_bins: int = 10) -> dict[str, list[float]]:
    """Mean predicted vs observed conversion per bin (deciles by default) of the prediction."""
    p_pred = np.asarray(p_pred, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(p_pred) == 0:
        return {"mean_predicted": [], "observed": [], "count": []}
    order = np.argsort(p_pred, kind="mergesort")
    bins = np.array_split(order, min(n_bins, len(order)))
    return {
        "mean_predicted": [float(p_pred[b].mean()) for b in bins],
        "observed": [float(y[b].mean()) for b in bins],
        "count": [len(b) for b in bins],
    }


# ---------------------------------------------------------------------------------------------
# Policy value
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    value: float  # mean per customer
    se: float
    low: float  # 95 % confidence interval
    high: float

    @classmethod
    def from_influence(cls, phi: np.ndarray) -> Estimate:
        phi = np.asarray(phi, dtype=np.float64)
        n = len(phi)
        value = float(phi.mean()) if n else float("nan")
        se = float(phi.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        return cls(value=value, se=se, low=value - _Z95 * se, high=value + _Z95 * se)


@dataclass(frozen=True)
class PolicyValue:
    """Per-customer value of a policy, and its lift over giving everyone control."""

    ipw: Estimate
    ipw_lift: Estimate
    dr: Estimate | None = None
    dr_lift: Estimate | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def policy_value(
    policy,
    arm,
    outcome,
    propensity,
    outcome_model: np.ndarray | None = None,
    *,
    control: int = 0,
) -> PolicyValue:
    """Value of ``policy`` (arm index per row) from logged data: rows received ``arm`` with
    probability ``propensity`` and produced ``outcome`` (conversion, revenue, profit ...).

    IPW influence: 1[arm = policy] y / e. Doubly robust, with ``outcome_model`` [n, A] the
    predicted outcome per arm: mu(policy) + 1[arm = policy] (y - mu(arm)) / e. The lift is the
    paired difference against the all-control policy, so its interval accounts for the shared
    rows.
    """
    policy = np.asarray(policy, dtype=np.int64)
    arm = np.asarray(arm, dtype=np.int64)
    y = np.asarray(outcome, dtype=np.float64)
    e = np.asarray(propensity, dtype=np.float64)
    if not len(policy) == len(arm) == len(y) == len(e):
        raise ValueError("policy, arm, outcome and propensity must have the same length")
    follows = (arm == policy) / e
    gets_control = (arm == control) / e
    phi = follows * y
    phi_control = gets_control * y
    result = {
        "ipw": Estimate.from_influence(phi),
        "ipw_lift": Estimate.from_influence(phi - phi_control),
    }
    if outcome_model is not None:
        mu = np.asarray(outcome_model, dtype=np.float64)
        rows = np.arange(len(y))
        residual = y - mu[rows, arm]
        dr = mu[rows, policy] + follows * residual
        dr_control = mu[:, control] + gets_control * residual
        result["dr"] = Estimate.from_influence(dr)
        result["dr_lift"] = Estimate.from_influence(dr - dr_control)
    return PolicyValue(**result)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def evaluate_uplift(
    p_convert: np.ndarray,
    arm,
    converted,
    *,
    arms: Sequence[str],
    propensity=None,
    policy=None,
    policy_outcome=None,
    policy_outcome_model: np.ndarray | None = None,
    ks: Sequence[float] = (0.1, 0.2, 0.3),
    max_points: int = 101,
    bootstrap_replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = 0,
) -> dict[str, Any]:
    """The model page's offline report on held-out randomized rows.

    ``p_convert`` [n, A] are the predictions for the rows' customers; per coupon arm the scores
    are the predicted uplift ``p[:, a] - p[:, 0]`` on the rows that received arm a or control.
    With ``policy`` (arm per row) the report adds its value on ``policy_outcome`` (default: the
    conversion), by IPW and, given ``policy_outcome_model`` [n, A], doubly robust. Per arm,
    ``intervals`` holds 95 % bootstrap intervals of the ranking metrics
    (:func:`ranking_metric_intervals`, seeded by ``seed``)."""
    p = np.asarray(p_convert, dtype=np.float64)
    arm = np.asarray(arm, dtype=np.int64)
    y = np.asarray(converted, dtype=np.float64)
    report: dict[str, Any] = {"arms": {}, "n": len(y)}
    for a in range(1, len(arms)):
        rows = (arm == a) | (arm == 0)
        score = p[rows, a] - p[rows, 0]
        treated = arm[rows] == a
        entry = {
            "n_treated": int(treated.sum()),
            "n_control": int((~treated).sum()),
            "qini_coefficient": qini_coefficient(y[rows], score, treated),
            "auuc": auuc(y[rows], score, treated),
            "qini_curve": qini_curve_points(y[rows], score, treated, max_points),
        }
        for k in ks:
            entry[f"uplift_at_{round(k * 100)}"] = uplift_at_k(y[rows], score, treated, k)
        entry["intervals"] = ranking_metric_intervals(
            y[rows], score, treated, ks, replicates=bootstrap_replicates, seed=seed + a
        )
        entry["calibration"] = calibration(p[arm == a, a], y[arm == a])
        report["arms"][arms[a]] = entry
    report["calibration"] = calibration(p[np.arange(len(arm)), arm], y)
    coefficients = [v["qini_coefficient"] for v in report["arms"].values()]
    report["mean_qini_coefficient"] = float(np.nanmean(coefficients)) if coefficients else None
    if policy is not None:
        e = np.full(len(y), 1.0 / len(arms)) if propensity is None else np.asarray(propensity)
        outcome = y if policy_outcome is None else np.asarray(policy_outcome, dtype=np.float64)
        report["policy"] = policy_value(policy, arm, outcome, e, policy_outcome_model).to_dict()
    return report


# ---------------------------------------------------------------------------------------------
# Two policies on the same rows (champion and challenger)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyDifference:
    """Value of policy a minus that of policy b, per customer, on the same logged rows."""

    ipw: Estimate
    dr: Estimate | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def policy_value_difference(
    policy_a,
    policy_b,
    arm,
    outcome,
    propensity,
    outcome_model_a: np.ndarray | None = None,
    outcome_model_b: np.ndarray | None = None,
) -> PolicyDifference:
    """V(a) - V(b) from the same logged rows, as paired per-row differences of the influence
    values ``policy_value`` uses, so the interval accounts for the rows the two share (where
    both policies pick the logged arm the IPW terms cancel). The doubly robust difference uses
    each policy's own outcome model (``outcome_model_b`` defaults to ``outcome_model_a``): each
    term is unbiased with known propensities whatever the model, so the difference is too."""
    policy_a = np.asarray(policy_a, dtype=np.int64)
    policy_b = np.asarray(policy_b, dtype=np.int64)
    arm = np.asarray(arm, dtype=np.int64)
    y = np.asarray(outcome, dtype=np.float64)
    e = np.asarray(propensity, dtype=np.float64)
    if not len(policy_a) == len(policy_b) == len(arm) == len(y) == len(e):
        raise ValueError("policies, arm, outcome and propensity must have the same length")
    follows_a = (arm == policy_a) / e
    follows_b = (arm == policy_b) / e
    ipw = Estimate.from_influence((follows_a - follows_b) * y)
    if outcome_model_a is None:
        return PolicyDifference(ipw=ipw)
    mu_a = np.asarray(outcome_model_a, dtype=np.float64)
    mu_b = mu_a if outcome_model_b is None else np.asarray(outcome_model_b, dtype=np.float64)
    rows = np.arange(len(y))
    dr_a = mu_a[rows, policy_a] + follows_a * (y - mu_a[rows, arm])
    dr_b = mu_b[rows, policy_b] + follows_b * (y - mu_b[rows, arm])
    return PolicyDifference(ipw=ipw, dr=Estimate.from_influence(dr_a - dr_b))
