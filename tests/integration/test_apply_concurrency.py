"""Applying a strategy from two connections at the same moment, on PostgreSQL: the campaign row
lock makes one of them create every assignment and the other create nothing."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from campaigns.assignments import strategy_apply
from campaigns.choices import AuditVerb
from campaigns.models import Assignment, AuditEvent, Strategy
from campaigns.services import campaign_create
from campaigns.strategies import strategy_compute
from tests.scored import scored_merchant

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def proposed(merchant_a, mona, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    scored = scored_merchant(merchant_a, customers=3000, seed=5, chunk_size=1000)
    start = timezone.now() + timedelta(days=1)
    campaign = campaign_create(
        merchant=merchant_a,
        actor=mona,
        coupon_types=["PCT10", "AMT20", "SPEND199_30"],
        name="Race",
        budget=Decimal("2000"),
        starts_at=start,
        ends_at=start + timedelta(days=7),
    )
    first = strategy_compute(campaign=campaign, version=scored.version)
    second = strategy_compute(campaign=campaign, version=scored.version)
    return first, second


def _race(calls):
    """Run the calls in threads released together; their results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_two_applies_at_once_create_every_assignment_once(proposed, mona):
    strategy, _ = proposed
    results = _race([lambda: strategy_apply(strategy=strategy, actor=mona)] * 2)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.created for r in results) == [0, 3000]
    assert sorted(r.already_applied for r in results) == [False, True]
    assert Assignment.objects.count() == 3000
    assert Assignment.objects.values("customer").distinct().count() == 3000
    assert AuditEvent.objects.filter(verb=AuditVerb.STRATEGY_APPLIED).count() == 1


def test_two_strategies_of_one_campaign_at_once_apply_one(proposed, mona):
    first, second = proposed
    results = _race(
        [
            lambda: strategy_apply(strategy=first, actor=mona),
            lambda: strategy_apply(strategy=second, actor=mona),
        ]
    )
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], ValidationError), results
    assert Strategy.objects.filter(status="applied").count() == 1
    applied = Strategy.objects.get(status="applied")
    assert Assignment.objects.count() == 3000
    assert set(Assignment.objects.values_list("strategy", flat=True).distinct()) == {applied.pk}
