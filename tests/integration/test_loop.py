"""The whole loop through a real worker on Redis, writing to PostgreSQL: simulate and import a
merchant, train and score on the worker, propose on the worker, apply, play the period from the
simulator's truth, import its outcomes, measure against the holdout, retrain on the worker with
the campaign's randomized rows, and compare the challenger with the champion."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from campaigns.choices import AssignmentKind, StrategyStatus
from campaigns.loop import loop_campaign, loop_train
from campaigns.models import Assignment, Customer, Merchant, Outcome
from campaigns.simulated import merchant_load_simulation
from modeling.models import Job
from modeling.training_service import held_out_customers

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 1500
SEED = 12


def test_the_loop_runs_end_to_end_through_a_worker(celery_worker, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    lines: list[str] = []
    merchant = Merchant.objects.create(name="Loop", slug="sim-loop")
    simulation = merchant_load_simulation(
        merchant=merchant, customers=CUSTOMERS, seed=SEED, report=lines.append
    )
    # when the first model trains and scores on the worker
    first = loop_train(merchant=merchant, epochs=1, report=lines.append)
    assert first.is_champion and first.scored_at is not None
    assert Job.objects.get(pk=first.job_id).result["version"] == first.number

    # and a campaign goes round: proposed on the worker, applied, played, measured
    loop = loop_campaign(
        merchant=merchant,
        truth=simulation.truth,
        budget=Decimal("600"),
        seed=SEED,
        report=lines.append,
    )
    strategy = loop.strategy
    assert strategy.status == StrategyStatus.APPLIED
    # the off-policy estimate was made from the experiment's rows of the customers the model
    # held out (all are eligible), scaled to every eligible customer
    ids = np.array(Customer.objects.filter(merchant=merchant).values_list("id", flat=True))
    offpolicy = strategy.summary["offpolicy"]
    assert offpolicy["out_of_sample"] is True
    assert offpolicy["rows"] == held_out_customers(merchant=merchant, customer_ids=ids).sum()
    assert offpolicy["population"] == strategy.eligible_customers == CUSTOMERS
    assert offpolicy["estimates"]["profit"]["dr"] is not None

    # then every simulated order came in, attributed to the strategy's assignments
    period, kind = loop.outcomes.period, loop.outcomes.kind
    assert Outcome.objects.filter(merchant=merchant).count() == period.n_orders
    assert Outcome.objects.filter(assignment__strategy=strategy).count() == period.n_orders
    # and the realized results measure exactly what the simulator drew
    data = loop.result.data
    overall = data["overall"]
    treated = kind != AssignmentKind.HOLDOUT
    assert overall["enough"]
    assert overall["treated"]["customers"] == treated.sum()
    assert overall["control"]["customers"] == (~treated).sum()
    assert overall["treated"]["conversions"] == period.converted[treated].sum()
    assert overall["control"]["conversions"] == period.converted[~treated].sum()
    assert data["redemptions"] == period.redeemed.sum()
    drawn_profit = period.order * period.margin_rate - period.discount
    expected = (drawn_profit[treated].mean() - drawn_profit[~treated].mean()) * treated.sum()
    realized = loop.realized_profit
    assert realized["difference"] == pytest.approx(expected, rel=1e-3, abs=1.0)
    # and the simulator's truth is where the interval says (within four standard errors)
    se = (realized["high"] - realized["low"]) / (2 * 1.959963984540054)
    assert abs(realized["difference"] - loop.true_profit) < 4 * se

    # when a second version trains on the worker
    second = loop_train(merchant=merchant, epochs=1, report=lines.append)
    # then it learned from the campaign's holdout and exploration rows too
    randomized = Assignment.objects.filter(
        strategy=strategy, kind__in=[AssignmentKind.HOLDOUT, AssignmentKind.EXPLORATION]
    )
    counts = second.data_counts
    assert counts["holdout_rows"] == strategy.holdout_customers
    assert counts["exploration_rows"] == strategy.exploration_customers
    assert counts["treatments"] == CUSTOMERS + randomized.count()
    # and was compared with the champion on the same held-out customers, by the rule
    comparison = second.evaluation["champion_comparison"]
    assert comparison["champion"] == first.number
    assert comparison["rows"] == counts["held_out_rows"]
    assert comparison["promote"] == (comparison["difference"]["low"] > 0)
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.is_champion == comparison["promote"] != first.is_champion
    assert np.isfinite(loop.true_profit)
