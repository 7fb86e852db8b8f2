"""Baselines on planted effects in static features. Plain functions, no database."""

from __future__ import annotations

import numpy as np

from modeling.baselines import (
    ArmMeans,
    ResponseModel,
    TLearner,
    best_single_arm,
    random_policy,
    response_targeting_policy,
)
from modeling.metrics import true_qini_coefficient


def planted(n: int, seed: int):
    """x0 > 0 responds to arm 1; x1 drives buying anyway; arm 2 does nothing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    arm = rng.integers(0, 3, n)
    base = 0.05 + 0.25 * (x[:, 1] > 0.5)
    true_p = np.stack([base, base + 0.4 * (x[:, 0] > 0), base], axis=1)
    converted = rng.random(n) < true_p[np.arange(n), arm]
    revenue = np.where(converted, np.exp(4 + 0.5 * x[:, 2] + 0.1 * rng.normal(size=n)), 0.0)
    return x, arm, converted, revenue, true_p


def test_t_learner_recovers_a_planted_uplift():
    x, arm, converted, revenue, _ = planted(6000, seed=0)
    model = TLearner(n_arms=3, max_iter=60, seed=0).fit(x, arm, converted, revenue)
    x_test, _, _, _, true_p = planted(2000, seed=1)
    p, value = model.predict(x_test)
    assert p.shape == (2000, 3) and value.shape == (2000, 3)
    uplift = p - p[:, :1]
    responders = x_test[:, 0] > 0
    assert uplift[responders, 1].mean() - uplift[~responders, 1].mean() > 0.25
    assert true_qini_coefficient(true_p[:, 1] - true_p[:, 0], uplift[:, 1]) > 0.7
    # order value follows x2 (exp(4 + 0.5 x2))
    assert np.corrcoef(np.log(value[:, 0]), x_test[:, 2])[0, 1] > 0.8


def test_response_model_ranks_likely_buyers_first():
    x, _arm, converted, _, _ = planted(6000, seed=2)
    p_buy = ResponseModel(max_iter=60, seed=0).fit(x, converted).predict(x)
    assert p_buy[x[:, 1] > 0.5].mean() > p_buy[x[:, 1] <= 0.5].mean() + 0.1
    policy = response_targeting_policy(p_buy, arm=2, share=0.25)
    assert (policy == 2).sum() == 1500 and set(np.unique(policy)) == {0, 2}
    assert p_buy[policy == 2].min() >= p_buy[policy == 0].max()


def test_arm_means_and_best_single_arm():
    arm = np.array([0, 0, 1, 1, 2, 2])
    converted = np.array([0, 1, 1, 1, 0, 0])
    revenue = np.array([0, 10.0, 20.0, 40.0, 0, 0])
    means = ArmMeans(3).fit(arm, converted, revenue)
    p, value = means.predict(4)
    assert p.shape == (4, 3) and p[0].tolist() == [0.5, 1.0, 0.0]
    assert value[0].tolist() == [10.0, 30.0, 0.0]
    # profit by arm: control is never the answer, the best coupon is
    assert best_single_arm(np.array([5.0, -1.0, 2.0])) == 2
    assert best_single_arm(np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 3.0]])) == 2


def test_random_policy_is_seeded_and_covers_every_arm():
    a, b = random_policy(3000, 4, seed=1), random_policy(3000, 4, seed=1)
    assert np.array_equal(a, b)
    assert np.bincount(a, minlength=4).min() > 600
