"""Uplift metrics against hand-computed values and against scikit-uplift. No database."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from modeling.metrics import (
    auuc,
    calibration,
    evaluate_uplift,
    policy_value,
    qini_coefficient,
    qini_curve,
    qini_curve_points,
    ranking_metric_intervals,
    ranking_metrics_weighted,
    true_qini_coefficient,
    uplift_at_k,
    uplift_curve,
)

# Six customers by descending score: (converted, treated).
Y = np.array([1, 0, 1, 0, 0, 1])
T = np.array([1, 1, 0, 1, 0, 0])
SCORE = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


def sklift_metrics():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sklift import metrics
    return metrics


def test_qini_curve_by_hand():
    x, q = qini_curve(Y, SCORE, T)
    # k=1: Yt=1, Nt=1, Nc=0 -> 1; k=2: 1; k=3: Yt=1 - Yc=1 x Nt/Nc=2/1 -> -1;
    # k=4: 1 - 1 x 3/1 = -2; k=5: 1 - 1 x 3/2 = -0.5; k=6: 1 - 2 x 3/3 = -1
    assert x.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert q.tolist() == pytest.approx([0, 1, 1, -1, -2, -0.5, -1])


def test_uplift_curve_and_uplift_at_k_by_hand():
    _x, u = uplift_curve(Y, SCORE, T)
    # k=4: treated rate 1/3, control rate 1/1 -> (1/3 - 1) x 4
    assert u[4] == pytest.approx((1 / 3 - 1) * 4)
    # top 50 % = first three: treated 1/2 convert, control 1/1
    assert uplift_at_k(Y, SCORE, T, 0.5) == pytest.approx(0.5 - 1.0)


def test_qini_coefficient_by_hand():
    # perfect order: treated responders first (score 1), control non-responders and treated
    # non-responders (0), control responders last (-1); the coefficient of the perfect ranking
    # is 1, of its reverse negative
    perfect = Y * T - Y * (1 - T)
    assert qini_coefficient(Y, perfect, T) == pytest.approx(1.0)
    assert qini_coefficient(Y, -perfect, T) < 0
    # hand: area of the given curve minus the random line's (0,0)-(6,-1), over the same for the
    # perfect curve
    x, q = qini_curve(Y, SCORE, T)
    xp, qp = qini_curve(Y, perfect, T)
    area = np.trapezoid(q, x) - (-3.0)
    assert qini_coefficient(Y, SCORE, T) == pytest.approx(area / (np.trapezoid(qp, xp) + 3.0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scikit_uplift(seed):
    metrics = sklift_metrics()
    rng = np.random.default_rng(seed)
    n = 500
    treatment = rng.integers(0, 2, n)
    score = np.round(rng.normal(size=n), 1)  # rounded: plenty of ties
    y = (rng.random(n) < 0.2 + 0.2 * treatment * (score > 0)).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = {
            "qini": metrics.qini_auc_score(y, score, treatment),
            "auuc": metrics.uplift_auc_score(y, score, treatment),
            "at30": metrics.uplift_at_k(y, score, treatment, strategy="overall", k=0.3),
            "curve": metrics.qini_curve(y, score, treatment),
        }
    assert qini_coefficient(y, score, treatment) == pytest.approx(expected["qini"], rel=1e-9)
    assert auuc(y, score, treatment) == pytest.approx(expected["auuc"], rel=1e-9)
    assert uplift_at_k(y, score, treatment, 0.3) == pytest.approx(expected["at30"], rel=1e-9)
    x, q = qini_curve(y, score, treatment)
    assert x.tolist() == expected["curve"][0].tolist()
    assert q == pytest.approx(expected["curve"][1])


def test_qini_curve_points_for_a_chart():
    rng = np.random.default_rng(3)
    n = 5000
    t = rng.integers(0, 2, n)
    score = rng.random(n)
    y = rng.random(n) < 0.1 + 0.1 * t * score
    points = qini_curve_points(y, score, t)
    assert len(points["share"]) == 101 and points["share"][0] == 0 and points["share"][-1] == 1
    assert points["qini"][0] == 0 and points["perfect"][-1] == pytest.approx(points["qini"][-1])
    assert points["random"][-1] == pytest.approx(points["qini"][-1])
    assert len(qini_curve_points(Y, SCORE, T)["share"]) == 7  # fewer rows, fewer points


def test_true_qini_coefficient():
    true_uplift = np.array([0.3, 0.1, -0.2, 0.0, 0.05])
    assert true_qini_coefficient(true_uplift, true_uplift) == pytest.approx(1.0)
    assert true_qini_coefficient(true_uplift, -true_uplift) == pytest.approx(-1.0)
    assert true_qini_coefficient(true_uplift, np.zeros(5)) == pytest.approx(0.0)
    # hand: order 0.3, 0.0, 0.1, 0.05, -0.2 -> cumulative 0.3, 0.3, 0.4, 0.45, 0.25
    score = np.array([5, 3, 1, 4, 2])
    area = np.trapezoid([0, 0.3, 0.3, 0.4, 0.45, 0.25]) - 0.5 * 5 * 0.25
    perfect = np.trapezoid([0, 0.3, 0.4, 0.45, 0.45, 0.25]) - 0.5 * 5 * 0.25
    assert true_qini_coefficient(true_uplift, score) == pytest.approx(area / perfect)


def test_calibration_by_decile():
    p = np.linspace(0.05, 0.95, 20)
    y = np.r_[np.zeros(10), np.ones(10)]
    table = calibration(p, y, n_bins=4)
    assert table["count"] == [5, 5, 5, 5]
    assert table["observed"] == [0.0, 0.0, 1.0, 1.0]
    assert table["mean_predicted"][0] == pytest.approx(p[:5].mean())


def test_policy_value_ipw_by_hand():
    # four rows, arms 0/1 with propensity 1/2; the policy gives arm 1 to rows 0 and 1
    policy = np.array([1, 1, 0, 0])
    arm = np.array([1, 0, 0, 1])
    y = np.array([1.0, 1.0, 0.0, 1.0])
    e = np.full(4, 0.5)
    result = policy_value(policy, arm, y, e)
    # influence: row 0 follows (1/0.5), row 1 does not, row 2 follows with y=0, row 3 does not
    phi = np.array([2.0, 0.0, 0.0, 0.0])
    assert result.ipw.value == pytest.approx(0.5)
    assert result.ipw.se == pytest.approx(phi.std(ddof=1) / 2)
    assert result.ipw.low == pytest.approx(0.5 - 1.959964 * phi.std(ddof=1) / 2)
    # all-control influence: rows 1 and 2 -> (0, 2, 0, 0); lift = phi - that
    assert result.ipw_lift.value == pytest.approx(0.0)
    assert result.dr is None


def test_doubly_robust_with_an_exact_outcome_model_has_no_residual():
    rng = np.random.default_rng(0)
    n = 4000
    mu = np.stack([np.full(n, 0.1), np.full(n, 0.3)], axis=1)
    arm = rng.integers(0, 2, n)
    y = mu[np.arange(n), arm]  # outcomes exactly as modelled
    result = policy_value(np.ones(n, dtype=int), arm, y, np.full(n, 0.5), mu)
    assert result.dr.value == pytest.approx(0.3)
    assert result.dr_lift.value == pytest.approx(0.2)
    assert result.dr.se == pytest.approx(0.0, abs=1e-12)
    assert result.ipw.low < 0.3 < result.ipw.high


def test_policy_value_interval_covers_the_truth_on_random_outcomes():
    rng = np.random.default_rng(7)
    n = 20000
    arm = rng.integers(0, 3, n)
    p = np.array([0.1, 0.15, 0.05])
    y = rng.random(n) < p[arm]
    policy = np.full(n, 1)
    result = policy_value(policy, arm, y, np.full(n, 1 / 3), np.tile(p, (n, 1)))
    # the 95 % interval is value +- 1.96 se; within 3 se of the truth (a 1-in-370 miss)
    for estimate, truth in ((result.ipw, 0.15), (result.dr, 0.15), (result.dr_lift, 0.05)):
        assert estimate.high - estimate.value == pytest.approx(1.959964 * estimate.se)
        assert abs(estimate.value - truth) < 3 * estimate.se


def test_evaluate_uplift_report():
    rng = np.random.default_rng(5)
    n = 3000
    arm = rng.integers(0, 3, n)
    x = rng.random(n)
    p = np.stack([np.full(n, 0.1), 0.1 + 0.3 * x, np.full(n, 0.1)], axis=1)
    y = rng.random(n) < p[np.arange(n), arm]
    report = evaluate_uplift(
        p,
        arm,
        y,
        arms=("control", "a", "b"),
        policy=np.where(x > 0.5, 1, 0),
        policy_outcome_model=p,
    )
    assert set(report["arms"]) == {"a", "b"}
    a = report["arms"]["a"]
    assert a["qini_coefficient"] > 0.1 and a["uplift_at_10"] > a["uplift_at_30"] > 0
    assert len(a["qini_curve"]["share"]) == 101 and len(a["calibration"]["count"]) == 10
    assert report["policy"]["dr_lift"]["value"] > 0
    for name in ("qini_coefficient", "auuc", "uplift_at_10", "uplift_at_20", "uplift_at_30"):
        low, high = a["intervals"][name]
        assert low < a[name] < high


@pytest.mark.parametrize("seed", range(5))
def test_weighted_ranking_metrics_equal_the_metrics_of_repeated_rows(seed):
    """The bootstrap's shortcut: integer weights on rows ranked once give exactly the metrics
    of the rows repeated that many times (ties, cuts through a row's copies and all)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    y = (rng.random(n) < 0.3).astype(float)
    t = rng.random(n) < 0.5
    score = np.round(rng.normal(size=n), 1)  # many ties
    weights = rng.poisson(1.0, size=(4, n))
    got = ranking_metrics_weighted(y, score, t, weights)
    for b, w in enumerate(weights):
        yy, ss, tt = np.repeat(y, w), np.repeat(score, w), np.repeat(t, w)
        expected = {
            "qini_coefficient": qini_coefficient(yy, ss, tt),
            "auuc": auuc(yy, ss, tt),
            **{f"uplift_at_{k}": uplift_at_k(yy, ss, tt, k / 100) for k in (10, 20, 30)},
        }
        for name, value in expected.items():
            np.testing.assert_allclose(got[name][b], value, atol=1e-12, err_msg=name)


def test_bootstrap_intervals_are_deterministic_and_cover_the_truth():
    rng = np.random.default_rng(11)
    n = 4000
    x = rng.random(n)
    t = rng.random(n) < 0.5
    y = (rng.random(n) < 0.1 + 0.2 * x * t).astype(float)  # the uplift grows with x
    first = ranking_metric_intervals(y, x, t, seed=3)
    assert first == ranking_metric_intervals(y, x, t, seed=3)
    assert first != ranking_metric_intervals(y, x, t, seed=4)
    # true uplift in the top 10 % (x > 0.9) is 0.2 x 0.95 = 0.19; a random score has Qini ~ 0
    low, high = first["uplift_at_10"]
    assert low < 0.19 < high and low > 0.05
    low, high = ranking_metric_intervals(y, rng.random(n), t, seed=3)["qini_coefficient"]
    assert low < 0 < high
    assert first["qini_coefficient"][0] > high  # the informative score is clearly better


def test_bootstrap_intervals_are_empty_when_undefined():
    assert ranking_metric_intervals([1.0], [0.5], [True]) == {
        name: [None, None]
        for name in ("qini_coefficient", "auuc", "uplift_at_10", "uplift_at_20", "uplift_at_30")
    }
