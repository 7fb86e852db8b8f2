"""Champion and challenger: when a newly trained model version takes over from the champion.

The rule (the model page shows it, ``templates/modeling/_promotion_rule.html``):

1. Both versions are judged on the same held-out rows. Which customers are held out is decided by
   a keyed hash of the customer id with a salt fixed per merchant (``evaluation_split``): every
   version of a merchant holds out the same customers, and rows added later for those customers
   (the holdout and exploration of applied campaigns) land on the held-out side too. The
   champion is re-scored on the challenger's held-out rows when the challenger finishes.
2. Each version's policy is its greedy choice per customer: the arm with the highest predicted
   conversion uplift, or no coupon when none lifts it (``greedy_policy``), as on the model page.
3. Each policy's conversion rate is estimated doubly robust (DR) from the held-out randomized
   rows with their logged propensities, each version's own predictions as the direct-method
   part; the paired difference challenger - champion gets a 95 % interval
   (``metrics.policy_value_difference``).
4. The challenger becomes champion only when that interval lies entirely above zero (and at
   least ``MIN_ROWS`` held-out rows were compared). Otherwise the champion stays; a manager can
   still promote any ready version by hand, which the audit log records with this comparison.

A stricter rule than "higher point estimate" on purpose: a new version trained on a little more
data is usually within noise of the old one, and swapping models on noise churns every
downstream number (strategies, segments) for nothing.

Numpy only; no Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from modeling.metrics import Estimate, policy_value, policy_value_difference

__all__ = [
    "MIN_ROWS",
    "PROMOTION_RULE",
    "ChampionComparison",
    "align_predictions",
    "compare_with_champion",
    "evaluation_split",
    "greedy_policy",
    "rule_met",
]

PROMOTION_RULE = "dr_conversion_difference_above_zero"
MIN_ROWS = 100
HELD_OUT_SHARE = 0.2


def evaluation_split(uniform: np.ndarray, share: float = HELD_OUT_SHARE) -> np.ndarray:
    """Held out (True) where the customer's keyed-hash uniform number is below ``share``."""
    return np.asarray(uniform, dtype=np.float64) < share


def greedy_policy(p_convert: np.ndarray) -> np.ndarray:
    """Per row the arm with the highest predicted conversion uplift; 0 (no coupon) unless some
    coupon lifts it (ties go to the lower arm, so to no coupon)."""
    p = np.asarray(p_convert, dtype=np.float64)
    return np.argmax(p - p[:, :1], axis=1).astype(np.int64)


def align_predictions(
    p_convert: np.ndarray, model_arms: Sequence[str], arms: Sequence[str]
) -> np.ndarray:
    """A model's predictions [n, len(model_arms)] laid out in ``arms`` order. An arm the model
    never learned gets its no-coupon prediction (no uplift, so the greedy policy never picks
    it); ``arms[0]`` and ``model_arms[0]`` are both no coupon."""
    p = np.asarray(p_convert, dtype=np.float64)
    position = {arm: i for i, arm in enumerate(model_arms)}
    columns = [p[:, position[arm]] if arm in position else p[:, 0] for arm in arms]
    return np.column_stack(columns) if columns else np.zeros((len(p), 0))


def rule_met(difference: Estimate | None, rows: int) -> bool:
    """The promotion rule on a DR difference challenger - champion (module doc, step 4)."""
    if difference is None or rows < MIN_ROWS:
        return False
    return bool(np.isfinite(difference.low) and difference.low > 0)


@dataclass(frozen=True)
class ChampionComparison:
    """Both versions on the same held-out rows (conversion rate per customer)."""

    rows: int
    challenger_dr: Estimate  # DR value of the challenger's policy
    champion_dr: Estimate  # DR value of the champion's policy
    difference: Estimate  # DR, challenger - champion, paired
    ipw_difference: Estimate
    agreement: float  # share of rows where both policies pick the same arm
    promote: bool
    rule: str = PROMOTION_RULE

    def to_dict(self) -> dict[str, Any]:
        def plain(value):
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, float) and not np.isfinite(value):
                return None
            return value

        return plain(asdict(self))


def compare_with_champion(
    p_challenger: np.ndarray,
    p_champion: np.ndarray,
    arm: np.ndarray,
    converted: np.ndarray,
    propensity: np.ndarray,
) -> ChampionComparison:
    """The comparison of the module doc on held-out rows: both models' predictions per row
    ([n, A], same arm order), the arm each row got, whether it converted, its propensity."""
    p_a = np.asarray(p_challenger, dtype=np.float64)
    p_b = np.asarray(p_champion, dtype=np.float64)
    arm = np.asarray(arm, dtype=np.int64)
    y = np.asarray(converted, dtype=np.float64)
    e = np.asarray(propensity, dtype=np.float64)
    policy_a, policy_b = greedy_policy(p_a), greedy_policy(p_b)
    value_a = policy_value(policy_a, arm, y, e, p_a)
    value_b = policy_value(policy_b, arm, y, e, p_b)
    difference = policy_value_difference(policy_a, policy_b, arm, y, e, p_a, p_b)
    rows = len(arm)
    return ChampionComparison(
        rows=rows,
        challenger_dr=value_a.dr,
        champion_dr=value_b.dr,
        difference=difference.dr,
        ipw_difference=difference.ipw,
        agreement=float(np.mean(policy_a == policy_b)) if rows else float("nan"),
        promote=rule_met(difference.dr, rows),
    )
