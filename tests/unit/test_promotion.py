"""Champion and challenger: the promotion rule, the shared held-out split, the audit of every
promotion (automatic or a manager's choice), the rule on the model page, and retraining on a
schedule."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import AuditVerb
from campaigns.models import AuditEvent, DataImport, Merchant
from campaigns.simulated import merchant_load_simulation
from modeling import training_service
from modeling.dataset import merchant_data_load
from modeling.metrics import Estimate
from modeling.models import ModelVersion, RetrainingSchedule
from modeling.promotion import (
    MIN_ROWS,
    ChampionComparison,
    align_predictions,
    compare_with_champion,
    greedy_policy,
    rule_met,
)
from modeling.retraining_service import retraining_run_due, retraining_schedule_update
from modeling.training_service import experiment_arrays, held_out_rows, model_version_train
from tests.factories import ModelVersionFactory


# --- the rule (ML core) -------------------------------------------------------------------------
def _logged(n: int, seed: int = 0):
    """A uniform experiment over control and two coupons: coupon 1 lifts the first half of the
    customers by 20 points, coupon 2 the second half; nothing else works."""
    rng = np.random.default_rng(seed)
    first_half = np.arange(n) < n // 2
    p = np.full((n, 3), 0.1)
    p[first_half, 1] = 0.3
    p[~first_half, 2] = 0.3
    arm = rng.integers(0, 3, size=n)
    converted = rng.random(n) < p[np.arange(n), arm]
    return p, arm, converted, np.full(n, 1 / 3)


def test_a_challenger_that_knows_better_is_promoted():
    # given the true probabilities (challenger) against a champion that has them backwards
    p, arm, converted, e = _logged(6000)
    backwards = p[:, [0, 2, 1]]
    # when
    comparison = compare_with_champion(p, backwards, arm, converted, e)
    # then its policy converts about 20 points more, surely
    assert comparison.difference.value == pytest.approx(0.2, abs=0.04)
    assert comparison.difference.low > 0 and comparison.promote
    assert comparison.agreement == 0.0
    assert comparison.challenger_dr.value > comparison.champion_dr.value


def test_a_challenger_no_better_than_the_champion_is_not_promoted():
    p, arm, converted, e = _logged(6000, seed=1)
    same = compare_with_champion(p, p.copy(), arm, converted, e)
    assert same.difference.value == 0 and not same.promote and same.agreement == 1.0
    worse = compare_with_champion(p[:, [0, 2, 1]], p, arm, converted, e)
    assert worse.difference.high < 0 and not worse.promote


def test_a_higher_point_estimate_within_noise_is_not_enough():
    # given a champion wrong on 50 of 2,000 customers only (coupon 2 where coupon 1 works):
    # the challenger is truly better by 20 points on 2.5 % of them, 0.5 points in all
    p, arm, converted, e = _logged(2000, seed=2)
    champion = p.copy()
    champion[:50, 2] = 0.35
    comparison = compare_with_champion(p, champion, arm, converted, e)
    # then the interval straddles zero and the champion stays
    assert comparison.agreement == pytest.approx(1 - 50 / 2000)
    assert comparison.difference.low < 0 < comparison.difference.high
    assert not comparison.promote


def test_too_few_held_out_rows_never_promote():
    sure = Estimate(value=0.5, se=0.01, low=0.48, high=0.52)
    assert rule_met(sure, MIN_ROWS) and not rule_met(sure, MIN_ROWS - 1)
    assert not rule_met(None, 10_000)
    assert not rule_met(Estimate(0.1, float("nan"), float("nan"), float("nan")), 10_000)


def test_predictions_are_aligned_to_the_arms_compared_and_unknown_arms_never_chosen():
    p = np.array([[0.1, 0.2], [0.3, 0.1]])  # a model that knows control and PCT10 only
    aligned = align_predictions(p, ("control", "PCT10"), ("control", "AMT20", "PCT10"))
    assert aligned.tolist() == [[0.1, 0.1, 0.2], [0.3, 0.3, 0.1]]
    assert greedy_policy(aligned).tolist() == [2, 0]


# --- the shared held-out split ------------------------------------------------------------------
@pytest.fixture
def simulated(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    merchant = Merchant.objects.create(name="Sim", slug="sim-promote")
    merchant_load_simulation(merchant=merchant, customers=500, seed=6, report=lambda _: None)
    return merchant


def test_every_version_holds_out_the_same_customers(simulated):
    data = merchant_data_load(merchant=simulated)
    _, treatments = experiment_arrays(data)
    held = held_out_rows(merchant=simulated, data=data, treatments=treatments)
    again = held_out_rows(merchant=simulated, data=data, treatments=treatments)
    assert np.array_equal(held, again)
    assert 0.12 < held.mean() < 0.28
    # a row added later for a held-out customer is held out too (the customer decides)
    doubled = treatments.take(np.r_[np.arange(len(treatments)), np.arange(len(treatments))])
    held_doubled = held_out_rows(merchant=simulated, data=data, treatments=doubled)
    assert np.array_equal(held_doubled, np.r_[held, held])
    # another merchant's salt draws other customers
    other = Merchant.objects.create(name="Other", slug="other")
    assert not np.array_equal(held, held_out_rows(merchant=other, data=data, treatments=treatments))


# --- promotions and their audit -----------------------------------------------------------------
def _comparison(promote: bool, champion: ModelVersion) -> dict:
    low = 0.01 if promote else -0.02
    return {
        "champion": champion.number,
        "champion_id": champion.pk,
        "rows": 900,
        "rule": "dr_conversion_difference_above_zero",
        "challenger_dr": {"value": 0.11, "se": 0.01, "low": 0.09, "high": 0.13},
        "champion_dr": {"value": 0.09, "se": 0.01, "low": 0.07, "high": 0.11},
        "difference": {"value": 0.02, "se": 0.01, "low": low, "high": 0.04},
        "ipw_difference": {"value": 0.02, "se": 0.02, "low": -0.02, "high": 0.06},
        "agreement": 0.7,
        "promote": promote,
        "champion_same_split": True,
    }


@pytest.mark.django_db
def test_a_manager_may_promote_against_the_rule_and_the_audit_log_says_so(
    merchant_a, mona, client_for
):
    # given a champion and a challenger that did not beat it
    champion = ModelVersionFactory(merchant=merchant_a, number=1, is_champion=True)
    challenger = ModelVersionFactory(merchant=merchant_a, number=2)
    challenger.evaluation = {"champion_comparison": _comparison(False, champion)}
    challenger.save()
    # when a manager makes it champion from the model page
    page = client_for(mona).post(
        reverse(
            "modeling:model-promote", kwargs={"merchant": "shop-a", "version_id": challenger.pk}
        )
    )
    # then it is champion and the audit event records who, why, and that the rule was not met
    assert page.status_code == 302
    challenger.refresh_from_db()
    assert challenger.is_champion
    event = AuditEvent.objects.get(merchant=merchant_a, verb=AuditVerb.MODEL_PROMOTED)
    assert event.actor == mona
    assert event.data["reason"] == "manual" and event.data["previous"] == 1
    assert event.data["rule_met"] is False and event.data["compared_with"] == 1
    assert event.data["compared_with_previous"] is True
    assert event.data["dr_difference"] == {"value": 0.02, "low": -0.02, "high": 0.04}


@pytest.mark.django_db
def test_the_model_page_shows_the_rule_and_the_comparison(merchant_a, vera, client_for):
    champion = ModelVersionFactory(merchant=merchant_a, number=1, is_champion=True)
    challenger = ModelVersionFactory(merchant=merchant_a, number=2)
    challenger.evaluation = {"champion_comparison": _comparison(False, champion)}
    challenger.save()
    html = (
        client_for(vera)
        .get(reverse("modeling:model", kwargs={"merchant": "shop-a", "version_id": challenger.pk}))
        .content.decode()
    )
    assert 'data-testid="promotion-rule-text"' in html
    assert "95% confidence interval entirely above zero" in html
    assert 'data-testid="promotion-comparison"' in html and "rule not met" in html
    assert 'data-testid="retraining-form"' not in html  # a viewer changes nothing


@pytest.mark.heavy_ml
@pytest.mark.django_db
def test_retraining_promotes_a_challenger_that_meets_the_rule(
    simulated, monkeypatch, django_capture_on_commit_callbacks
):
    # given a champion trained on the merchant's data
    with django_capture_on_commit_callbacks(execute=True):
        first = model_version_train(merchant=simulated, actor=None, epochs=1)
    first.refresh_from_db()
    assert first.is_champion
    # when a second version trains and the comparison on the shared split says it is better
    calls = []

    def better(p_challenger, p_champion, arm, converted, propensity):
        calls.append((p_challenger.shape, p_champion.shape, arm.size))
        sure = Estimate(0.02, 0.005, 0.01, 0.03)
        return ChampionComparison(
            rows=arm.size,
            challenger_dr=Estimate(0.1, 0.01, 0.08, 0.12),
            champion_dr=Estimate(0.08, 0.01, 0.06, 0.10),
            difference=sure,
            ipw_difference=sure,
            agreement=0.5,
            promote=True,
        )

    monkeypatch.setattr(training_service, "compare_with_champion", better)
    with django_capture_on_commit_callbacks(execute=True):
        second = model_version_train(merchant=simulated, actor=None, epochs=1)
    second.refresh_from_db()
    first.refresh_from_db()
    # then the champion was scored on the challenger's held-out rows, and stepped down
    held = second.data_counts["held_out_rows"]
    assert calls == [((held, 6), (held, 6), held)]
    assert second.is_champion and not first.is_champion
    comparison = second.evaluation["champion_comparison"]
    assert comparison["champion"] == first.number and comparison["promote"] is True
    event = AuditEvent.objects.filter(verb=AuditVerb.MODEL_PROMOTED).first()
    assert event.actor is None and event.data["rule_met"] is True
    assert event.data["reason"] == "beat the champion on the shared held-out split"


@pytest.mark.heavy_ml
@pytest.mark.django_db
def test_retraining_records_the_comparison_and_follows_the_rule(
    simulated, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = model_version_train(merchant=simulated, actor=None, epochs=1)
    with django_capture_on_commit_callbacks(execute=True):
        second = model_version_train(merchant=simulated, actor=None, epochs=1)
    second.refresh_from_db()
    first.refresh_from_db()
    comparison = second.evaluation["champion_comparison"]
    assert comparison["rows"] == second.data_counts["held_out_rows"]
    assert comparison["champion_same_split"] is True
    # the same data, the same split: the rule decides, and the champion stays unless it is met
    assert comparison["promote"] == (comparison["difference"]["low"] > 0)
    assert first.is_champion == (not comparison["promote"])
    assert second.is_champion == comparison["promote"]
    assert second.evaluation["split"]["kind"] == "customer_hash"


# --- retraining on a schedule -------------------------------------------------------------------
@pytest.mark.django_db
def test_a_due_schedule_queues_one_training_however_often_beat_asks(merchant_a, mona, monkeypatch):
    queued = []

    def fake_train(*, merchant, actor, preset, epochs):
        queued.append((merchant.pk, preset, epochs))
        return ModelVersionFactory(merchant=merchant, number=len(queued) + 10, status="queued")

    monkeypatch.setattr(training_service, "model_version_train", fake_train)
    now = timezone.now()
    schedule = retraining_schedule_update(
        merchant=merchant_a, actor=mona, enabled=True, every_days=7, now=now
    )
    assert schedule.next_run_at == now + timedelta(days=7)
    assert AuditEvent.objects.filter(merchant=merchant_a, verb=AuditVerb.MERCHANT_UPDATED).exists()
    # not due yet: nothing
    assert retraining_run_due(now=now + timedelta(days=6)) == []
    # due: one training, and the next run a period later
    later = now + timedelta(days=7, minutes=5)
    served = retraining_run_due(now=later)
    assert [s.merchant_id for s in served] == [merchant_a.pk]
    assert queued == [(merchant_a.pk, "small", 20)]
    schedule.refresh_from_db()
    assert schedule.next_run_at == later + timedelta(days=7) and schedule.last_run_at == later
    assert schedule.last_outcome.startswith("queued the training of v")
    # asked again at the same moment (a second beat, a task delivered twice): nothing more
    assert retraining_run_due(now=later) == [] and len(queued) == 1


@pytest.mark.django_db
def test_a_due_schedule_skips_when_no_new_data_came_in(merchant_a, mona, monkeypatch):
    monkeypatch.setattr(
        training_service, "model_version_train", lambda **kw: pytest.fail("trained")
    )
    ModelVersionFactory(merchant=merchant_a, number=1, is_champion=True, trained_at=timezone.now())
    now = timezone.now()
    retraining_schedule_update(merchant=merchant_a, actor=mona, enabled=True, every_days=1, now=now)
    (served,) = retraining_run_due(now=now + timedelta(days=1, seconds=1))
    assert served.last_outcome.startswith("skipped: no treatments or outcomes")
    # an outcomes import since the champion trained makes it due for real
    DataImport.objects.create(
        merchant=merchant_a, kind="outcomes", source="api", status="succeeded",
        finished_at=timezone.now() + timedelta(seconds=1),
    )  # fmt: skip
    from modeling.retraining_service import new_data_since_champion

    assert new_data_since_champion(merchant=merchant_a)


@pytest.mark.django_db
def test_managers_set_the_schedule_on_the_model_page_and_viewers_cannot(
    merchant_a, mona, vera, client_for
):
    version = ModelVersionFactory(merchant=merchant_a, number=1, is_champion=True)
    url = reverse("modeling:retraining", kwargs={"merchant": "shop-a"})
    back = reverse("modeling:model", kwargs={"merchant": "shop-a", "version_id": version.pk})
    response = client_for(mona).post(
        url, {"enabled": "on", "every_days": "14", "only_with_new_data": "on", "next": back}
    )
    assert response.status_code == 302 and response["Location"] == back
    schedule = RetrainingSchedule.objects.get(merchant=merchant_a)
    assert schedule.enabled and schedule.every_days == 14 and schedule.updated_by == mona
    html = client_for(mona).get(back).content.decode()
    assert 'data-testid="retraining-form"' in html and "every 14 days" in html
    assert client_for(vera).post(url, {"every_days": "3"}).status_code == 403
    bad = client_for(mona).post(url, {"enabled": "on", "every_days": "999"})
    assert bad.status_code == 302
    schedule.refresh_from_db()
    assert schedule.every_days == 14


def test_the_loops_ml_core_imports_nothing_from_django():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; import modeling.offpolicy, modeling.promotion, modeling.simulation, "
        "modeling.realized; "
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
