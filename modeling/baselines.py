"""Baselines trained beside the LSTM uplift model on the same split and scored the same way.

Each baseline gives, like ``scoring.Predictions``, P(convert) per customer and arm [n, A] (and
where it can, the expected order value given conversion), so the same metrics and the same
profit policy apply:

- ``TLearner``: one gradient-boosting classifier (sklearn HistGradientBoostingClassifier) per arm
  on the aggregate (static) features, and one regressor of log order value per arm;
- ``ResponseModel``: one classifier of P(buy) that ignores the treatment — "send the coupon to
  whoever is most likely to buy" (``response_targeting_policy``);
- ``ArmMeans``: the same prediction for everyone (each arm's observed rates) — with the profit
  policy, the best single coupon for everyone (``best_single_arm``);
- ``random_policy``: a random arm per customer;
- the same network without the sequence encoder is ``TrainingConfig(use_sequence=False)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

__all__ = [
    "ArmMeans",
    "ResponseModel",
    "TLearner",
    "best_single_arm",
    "random_policy",
    "response_targeting_policy",
]


def _weights(weight: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)


MIN_CLASS_ROWS = 10  # fewer conversions (or non-conversions) in an arm: predict its rate


@dataclass
class TLearner:
    """Per-arm gradient boosting on static features (the T-learner)."""

    n_arms: int
    max_iter: int = 200
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 40
    seed: int = 0

    def _classifier(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=1.0,
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=15,
            random_state=self.seed,
        )

    def fit(
        self,
        x: np.ndarray,
        arm: np.ndarray,
        converted: np.ndarray,
        revenue: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> TLearner:
        arm = np.asarray(arm, dtype=np.int64)
        converted = np.asarray(converted).astype(bool)
        weight = _weights(sample_weight, len(arm))
        self.conversion_: list = []
        self.value_: list = []
        for a in range(self.n_arms):
            rows = arm == a
            y = converted[rows]
            if min(int(y.sum()), int((~y).sum())) < MIN_CLASS_ROWS:
                # Too few of one class to learn (or to hold out for early stopping): its rate.
                self.conversion_.append(float(y.mean()) if y.size else 0.0)
            else:
                self.conversion_.append(
                    self._classifier().fit(x[rows], y, sample_weight=weight[rows])
                )
            if revenue is None:
                continue
            paid = rows & converted & (np.asarray(revenue) > 0)
            log_value = np.log(np.where(paid, revenue, 1.0))[paid]
            if paid.sum() < 50:
                self.value_.append(float(np.exp(log_value.mean())) if paid.any() else 0.0)
                continue
            regressor = HistGradientBoostingRegressor(
                max_iter=self.max_iter,
                learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf,
                early_stopping=True,
                random_state=self.seed,
            ).fit(x[paid], log_value, sample_weight=weight[paid])
            residual = log_value - regressor.predict(x[paid])
            self.value_.append((regressor, float(np.mean(np.exp(residual)))))
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(P(convert) [n, A], E[order value | conversion] [n, A] or None)."""
        n = len(x)
        p = np.empty((n, self.n_arms), dtype=np.float32)
        for a, model in enumerate(self.conversion_):
            p[:, a] = model if isinstance(model, float) else model.predict_proba(x)[:, 1]
        if not self.value_:
            return p, None
        value = np.empty((n, self.n_arms), dtype=np.float32)
        for a, model in enumerate(self.value_):
            if isinstance(model, float):
                value[:, a] = model
            else:
                regressor, smearing = model
                value[:, a] = np.exp(regressor.predict(x)) * smearing
        return p, value


@dataclass
class ResponseModel:
    """P(buy) ignoring the treatment: the classic response model."""

    max_iter: int = 200
    learning_rate: float = 0.05
    seed: int = 0

    def fit(self, x: np.ndarray, converted: np.ndarray, sample_weight=None) -> ResponseModel:
        y = np.asarray(converted).astype(bool)
        if min(int(y.sum()), int((~y).sum())) < MIN_CLASS_ROWS:
            self.model_ = float(y.mean()) if y.size else 0.0  # too few to learn: the base rate
            return self
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=True,
            random_state=self.seed,
        ).fit(x, np.asarray(converted).astype(bool), sample_weight=sample_weight)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if isinstance(self.model_, float):
            return np.full(len(x), self.model_, dtype=np.float32)
        return self.model_.predict_proba(x)[:, 1].astype(np.float32)


@dataclass
class ArmMeans:
    """Each arm's (propensity-weighted) conversion rate and mean order value, for everyone."""

    n_arms: int

    def fit(self, arm, converted, revenue=None, sample_weight=None) -> ArmMeans:
        arm = np.asarray(arm, dtype=np.int64)
        converted = np.asarray(converted).astype(np.float64)
        weight = _weights(sample_weight, len(arm))
        self.p_ = np.zeros(self.n_arms)
        self.value_ = None if revenue is None else np.zeros(self.n_arms)
        for a in range(self.n_arms):
            rows = arm == a
            if rows.any():
                self.p_[a] = np.average(converted[rows], weights=weight[rows])
            if revenue is not None:
                paid = rows & (converted > 0)
                if paid.any():
                    self.value_[a] = np.average(np.asarray(revenue)[paid], weights=weight[paid])
        return self

    def predict(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        p = np.broadcast_to(self.p_.astype(np.float32), (n, self.n_arms)).copy()
        if self.value_ is None:
            return p, None
        return p, np.broadcast_to(self.value_.astype(np.float32), (n, self.n_arms)).copy()


def best_single_arm(expected_profit_by_arm: np.ndarray) -> int:
    """The coupon arm (>= 1) with the highest expected profit overall; ``expected_profit_by_arm``
    is [A] or [n, A] (averaged over customers)."""
    profit = np.asarray(expected_profit_by_arm, dtype=np.float64)
    if profit.ndim == 2:
        profit = profit.mean(axis=0)
    return int(np.argmax(profit[1:]) + 1)


def response_targeting_policy(p_buy: np.ndarray, arm: int, share: float) -> np.ndarray:
    """Give ``arm`` to the ``share`` of customers most likely to buy, control to the rest."""
    p_buy = np.asarray(p_buy)
    n_targeted = round(share * len(p_buy))
    policy = np.zeros(len(p_buy), dtype=np.int64)
    policy[np.argsort(-p_buy, kind="stable")[:n_targeted]] = arm
    return policy


def random_policy(n: int, n_arms: int, seed: int = 0) -> np.ndarray:
    """A uniformly random arm (control included) per customer."""
    return np.random.default_rng(seed).integers(0, n_arms, size=n)
