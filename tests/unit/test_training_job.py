"""Training a merchant's model as a job: data from the database, evaluation, artifact, champion.

Runs the Celery task eagerly; the integration suite runs a worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.test import Client

from campaigns.models import Membership, Merchant, TreatmentLog
from campaigns.simulated import merchant_load_simulation
from modeling.artifacts import load_trained_model
from modeling.models import Job, ModelVersion
from modeling.training_config import TrainingConfig
from modeling.training_service import model_version_train

pytestmark = pytest.mark.django_db


@pytest.fixture
def simulated(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    merchant = Merchant.objects.create(name="Sim", slug="sim")
    merchant_load_simulation(merchant=merchant, customers=600, seed=4, report=lambda _: None)
    return merchant


def test_training_produces_a_ready_evaluated_champion(
    simulated, mona, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        version = model_version_train(merchant=simulated, actor=mona, epochs=2)
    version.refresh_from_db()
    job = Job.objects.get(pk=version.job_id)
    assert job.status == "succeeded", job.error
    assert version.status == "ready" and version.is_champion
    assert version.arms[0] == "control" and len(version.arms) == 6
    assert version.data_counts["treatments"] == 600
    assert version.data_counts["held_out_rows"] + version.data_counts["training_rows"] == 600
    assert len(version.training_curves["epochs"]) >= 1
    fine_tuning = version.training_curves["fine_tuning"]  # the coupon effects' own fit
    assert fine_tuning and version.training_curves["fine_tuning_best_epoch"] <= len(fine_tuning)
    arms = version.evaluation["arms"]
    assert set(arms) == set(version.arms[1:])
    assert all("qini_coefficient" in entry and entry["qini_curve"] for entry in arms.values())
    # the baselines, trained on the same rows and measured on the same held-out rows
    assert set(version.evaluation["baselines"]) == {
        "static_network",
        "t_learner",
        "best_single_coupon",
        "response_model",
        "random",
    }
    summary = version.evaluation["summary"]
    assert set(summary) == {"lstm", *version.evaluation["baselines"]}
    assert {"value", "low", "high"} <= set(summary["lstm"]["policy_value_ipw"])
    # the model page shows them side by side
    client = Client()
    client.force_login(mona)
    Membership.objects.create(user=mona, merchant=simulated, role="viewer")
    page = client.get(f"/m/sim/models/{version.pk}/").content.decode()
    assert 'data-testid="evaluation-summary"' in page and "t_learner" in page
    # the artifact is complete and serves predictions alone
    bundle = load_trained_model(Path(version.artifact_path))
    assert list(bundle.arms) == version.arms


@pytest.mark.heavy_ml
def test_a_second_model_does_not_take_over_the_champion(
    simulated, mona, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = model_version_train(merchant=simulated, actor=mona, epochs=1)
        second = model_version_train(merchant=simulated, actor=mona, epochs=1)
    assert ModelVersion.objects.get(is_champion=True).pk == first.pk
    assert ModelVersion.objects.get(pk=second.pk).number == 2


def test_without_a_comparison_the_version_fails_with_a_clear_error(
    simulated, mona, django_capture_on_commit_callbacks
):
    TreatmentLog.objects.filter(merchant=simulated).exclude(coupon_type=None).delete()
    with django_capture_on_commit_callbacks(execute=True):
        version = model_version_train(merchant=simulated, actor=mona, epochs=1)
    version.refresh_from_db()
    assert version.status == "failed"
    assert "single arm" in version.error
    assert Job.objects.get(pk=version.job_id).status == "failed"
    assert not np.any([v.is_champion for v in ModelVersion.objects.all()])


def test_cancelling_a_queued_training_cancels_its_version(simulated, mona):
    from modeling.services import job_cancel
    from modeling.tasks import train_model

    version = model_version_train(merchant=simulated, actor=mona, epochs=1)  # not run yet
    job = Job.objects.get(pk=version.job_id)
    assert job_cancel(job=job, actor=mona)
    version.refresh_from_db()
    assert version.status == "cancelled"
    assert train_model.apply(args=[job.pk]).result is None  # a late delivery does nothing
    version.refresh_from_db()
    assert version.status == "cancelled" and not version.artifact_path


def test_cancelling_during_training_stops_at_the_next_epoch(
    simulated, mona, monkeypatch, django_capture_on_commit_callbacks
):
    from modeling import jobtask
    from modeling.services import job_cancel

    original = jobtask.job_report

    def cancel_at_first_epoch(*, job, progress, message=""):
        if message.startswith("Epoch 1/"):
            job_cancel(job=job, actor=mona)  # a manager presses Cancel while it trains
        original(job=job, progress=progress, message=message)

    monkeypatch.setattr(jobtask, "job_report", cancel_at_first_epoch)
    with django_capture_on_commit_callbacks(execute=True):
        version = model_version_train(merchant=simulated, actor=mona, epochs=5)
    version.refresh_from_db()
    job = Job.objects.get(pk=version.job_id)
    assert job.status == "cancelled"
    assert version.status == "cancelled"
    assert len(version.training_curves["epochs"]) == 1  # stopped after the first epoch
    assert not version.artifact_path and not version.is_champion


@pytest.mark.parametrize(("setting", "members"), [(0, TrainingConfig().members), (2, 2)])
def test_the_members_setting_sets_the_versions_members(merchant_a, settings, setting, members):
    settings.MODEL_MEMBERS = setting
    version = model_version_train(merchant=merchant_a, actor=None, epochs=1)  # queued, not run
    assert version.hyperparameters["members"] == members
    assert TrainingConfig.from_dict(version.hyperparameters).members == members
