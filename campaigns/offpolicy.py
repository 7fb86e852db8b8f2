"""Off-policy estimates of a proposed strategy, computed when it is proposed.

The Django side of ``modeling.offpolicy``: it reads the merchant's randomized rows (the treatment
log, and the holdout and exploration rows of applied strategies with outcomes:
``modeling.dataset.merchant_treatment_rows``), keeps those of the strategy's eligible customers
that the model did not train on (its held-out split), and weighs them by the strategy's choice
per customer. Rows the model learned from would flatter it: it chose the arms that happened to
work on them. The result goes into the strategy's
``summary["offpolicy"]`` (layout below); the strategy page shows it beside the model's own
expected numbers (``templates/campaigns/strategies/_offpolicy.html``).

``summary["offpolicy"]``: ``rows`` (randomized rows of eligible customers), ``rows_following``
(of them, rows whose arm is the strategy's choice), ``population`` (eligible customers),
``sources`` (rows per ``TreatmentSource``), ``estimates``: per outcome (``profit``,
``conversions``, ``revenue``) ``ipw`` and ``dr`` totals and ``ipw_per_customer`` /
``dr_per_customer``, each ``{"value", "se", "low", "high"}`` (95 % interval) or null, and
``model``: the model's own expected totals, with ``model_inside_dr`` saying whether each lies
inside the DR interval, ``enough_rows`` and ``out_of_sample`` (False: the model was trained
before the held-out split existed and these rows include some it learned from).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modeling.dataset import merchant_treatment_rows
from modeling.economics import CouponTerms
from modeling.models import ModelVersion
from modeling.offpolicy import logged_outcomes, outcome_models, strategy_offpolicy
from modeling.training_service import held_out_customers, trained_on_split

from .models import Merchant

# Fewer matching rows than this and the page says the estimate is too thin to lean on.
MIN_FOLLOWING_ROWS = 30


def strategy_offpolicy_estimate(
    *,
    merchant: Merchant,
    version: ModelVersion,
    customer_ids: np.ndarray,
    policy: np.ndarray,
    arms: Sequence[str],
    coupons: Sequence[CouponTerms],
    p_convert: np.ndarray,
    order_value: np.ndarray | None,
    margin_rate: float,
    average_order_value: float | None,
    expected: dict[str, float],
) -> dict[str, Any]:
    """IPW and DR estimates of a strategy (``policy[i]``: the arm index into ``arms`` for the
    eligible customer ``customer_ids[i]``; ``p_convert`` / ``order_value`` the scores of those
    customers by ``version``, columns in ``arms`` order) from the randomized rows of those
    customers that the version did not train on: those of the customers its held-out split
    kept out (``modeling.training_service.held_out_customers``; a version trained before the
    split existed is judged on every row, and ``out_of_sample`` says so). ``expected`` holds the
    model's own totals (profit, conversions, revenue)."""
    customer_ids = np.asarray(customer_ids, dtype=np.int64)
    order = np.argsort(customer_ids, kind="stable")
    sorted_ids = customer_ids[order]
    rows = merchant_treatment_rows(merchant=merchant)
    if sorted_ids.size == 0:
        return {"rows": 0, "rows_following": 0, "population": 0, "estimates": {}}
    position = np.clip(np.searchsorted(sorted_ids, rows["customer_id"]), 0, len(sorted_ids) - 1)
    eligible = sorted_ids[position] == rows["customer_id"]
    # Only rows the model did not learn from: a policy judged on its own training rows looks
    # better than it is (it picked the arms that happened to work there).
    out_of_sample = trained_on_split(version)
    if out_of_sample:
        eligible &= held_out_customers(merchant=merchant, customer_ids=rows["customer_id"])
    keep = np.flatnonzero(eligible)
    customer = order[position[keep]]  # index into the strategy's eligible customers
    index = {str(name): a for a, name in enumerate(arms)}
    names, inverse = np.unique(rows["arm"][keep].astype(str), return_inverse=True)
    arm = np.array([index.get(str(n), -1) for n in names], dtype=np.int64)[inverse]
    outcomes = logged_outcomes(
        arm,
        rows["converted"][keep],
        rows["revenue"][keep],
        coupons,
        margin_rate=margin_rate,
        redeemed=rows["redeemed"][keep],
    )
    models = outcome_models(
        p_convert[customer],
        None if order_value is None else order_value[customer],
        coupons,
        margin_rate=margin_rate,
        average_order_value=average_order_value,
    )
    result = strategy_offpolicy(
        policy=np.asarray(policy, dtype=np.int64)[customer],
        arm=arm,
        propensity=rows["propensity"][keep],
        outcomes=outcomes,
        models=models,
        population=int(customer_ids.size),
        n_arms=len(arms),
    )
    sources, counts = np.unique(rows["source"][keep].astype(str), return_counts=True)
    result["sources"] = {str(s): int(c) for s, c in zip(sources, counts, strict=True)}
    result["model"] = {name: float(value) for name, value in expected.items()}
    result["model_inside_dr"] = {
        name: _inside(result["estimates"].get(name, {}).get("dr"), value)
        for name, value in expected.items()
    }
    result["enough_rows"] = result["rows_following"] >= MIN_FOLLOWING_ROWS
    result["out_of_sample"] = out_of_sample
    return result


def _inside(estimate: dict[str, float | None] | None, value: float) -> bool | None:
    if not estimate or estimate.get("low") is None or estimate.get("high") is None:
        return None
    return bool(estimate["low"] <= value <= estimate["high"])
