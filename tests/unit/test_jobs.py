"""Jobs: the lifecycle services, the task base, the pages (live progress) and the API."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery import shared_task
from django.urls import reverse

from campaigns.models import AuditEvent
from modeling import services
from modeling.choices import JobKind, JobStatus
from modeling.jobtask import JobTask
from modeling.models import Job
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


@shared_task(bind=True, base=JobTask, name="tests.counting_job")
def counting_job(self, job, *, steps: int = 4, fail_at: int | None = None):
    for step in range(steps):
        if step == fail_at:
            raise RuntimeError(f"broke at step {step}")
        self.report(job, int(100 * step / steps), f"step {step}")
    return {"steps": steps, "message": f"Counted {steps} steps"}


def run_enqueued(django_capture_on_commit_callbacks, **kwargs) -> Job:
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_enqueue(kind=JobKind.WORKER_CHECK, task=counting_job, **kwargs)
    job.refresh_from_db()
    return job


def test_a_job_runs_to_success_with_its_result(
    merchant_a, alice, django_capture_on_commit_callbacks
):
    job = run_enqueued(django_capture_on_commit_callbacks, merchant=merchant_a, created_by=alice)
    assert job.status == JobStatus.SUCCEEDED
    assert job.progress == 100
    assert job.result == {"steps": 4, "message": "Counted 4 steps"}
    assert job.message == "Counted 4 steps"
    assert job.started_at <= job.finished_at
    assert job.created_by == alice


def test_a_failing_job_keeps_its_error(merchant_a):
    job = JobFactory(merchant=merchant_a)
    with pytest.raises(RuntimeError, match="broke at step 2"):  # eager mode propagates errors
        counting_job.apply(args=[job.pk], kwargs={"fail_at": 2})
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "broke at step 2" in job.error
    assert job.progress == 25  # the last progress reported before the failure
    assert job.finished_at is not None


def test_a_job_is_not_run_twice(merchant_a):
    job = JobFactory(merchant=merchant_a)
    counting_job.apply(args=[job.pk])
    job.refresh_from_db()
    finished_at = job.finished_at
    # A redelivered message for a finished job does nothing.
    assert counting_job.apply(args=[job.pk]).result is None
    job.refresh_from_db()
    assert job.finished_at == finished_at and job.status == JobStatus.SUCCEEDED


def test_a_missing_job_is_logged_not_crashed(caplog):
    assert counting_job.apply(args=[987654]).result is None
    assert "does not exist" in caplog.text


def test_cancelling_stops_a_running_job_at_its_next_report(merchant_a, alice):
    job = JobFactory(merchant=merchant_a)
    started = services.job_start(job_id=job.pk)
    services.job_report(job=started, progress=10, message="working")
    assert services.job_cancel(job=started, actor=alice)
    with pytest.raises(services.JobCancelled):
        services.job_report(job=started, progress=20)
    # A late success cannot overwrite the cancellation.
    assert not services.job_succeed(job=started, result={"x": 1})
    started.refresh_from_db()
    assert started.status == JobStatus.CANCELLED and started.progress == 10
    assert AuditEvent.objects.filter(verb="job.cancelled", actor=alice).count() == 1


def test_a_cancelled_queued_job_never_starts(merchant_a, alice):
    job = JobFactory(merchant=merchant_a)
    services.job_cancel(job=job, actor=alice)
    assert counting_job.apply(args=[job.pk]).result is None
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.started_at is None


def test_cancelling_a_finished_job_changes_nothing(merchant_a, alice):
    job = JobFactory(merchant=merchant_a, status=JobStatus.SUCCEEDED, progress=100)
    assert not services.job_cancel(job=job, actor=alice)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED


def test_progress_is_clamped_to_0_100(merchant_a):
    job = services.job_start(job_id=JobFactory(merchant=merchant_a).pk)
    services.job_report(job=job, progress=250)
    job.refresh_from_db()
    assert job.progress == 100


def test_routes_send_training_and_scoring_to_their_queues():
    from promo_portal.celery import app

    router = app.amqp.router
    assert router.route({}, "modeling.tasks.train_model")["queue"].name == "training"
    assert router.route({}, "modeling.tasks.score_chunk")["queue"].name == "scoring"
    assert router.route({}, "campaigns.tasks.import_file")["queue"].name == "default"
    assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]
    assert app.conf.task_acks_late is True
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit


@pytest.mark.parametrize(
    ("queues", "preloaded"),
    [({"default"}, False), ({"default", "scoring"}, True), ({"training"}, True)],
)
def test_a_worker_serving_a_model_queue_imports_keras_before_its_pool_starts(
    monkeypatch, queues, preloaded
):
    from promo_portal import celery as celery_module

    imported = []
    monkeypatch.setattr(celery_module.importlib, "import_module", imported.append)
    # celery.signals.worker_init's sender: the worker, its app's queues selected by -Q
    worker = SimpleNamespace(
        app=SimpleNamespace(
            amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=dict.fromkeys(queues)))
        )
    )
    celery_module.preload_keras(worker)
    assert imported == (["keras"] if preloaded else [])


def test_job_page_polls_while_running_and_stops_when_done(merchant_a, vera, client_for):
    job = JobFactory(
        merchant=merchant_a, status=JobStatus.RUNNING, progress=40, message="Epoch 2/5"
    )
    client = client_for(vera)
    page = client.get(reverse("modeling:job", kwargs={"merchant": "shop-a", "job_id": job.pk}))
    html = page.content.decode()
    progress_url = reverse("modeling:job-progress", kwargs={"merchant": "shop-a", "job_id": job.pk})
    assert f'hx-get="{progress_url}"' in html and "Epoch 2/5" in html and "40%" in html
    # a viewer sees no cancel button
    assert 'data-testid="cancel-job"' not in html
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, progress=100, message="Done")
    fragment = client.get(progress_url).content.decode()
    assert "hx-get" not in fragment and "100%" in fragment and "Succeeded" in fragment


def test_manager_cancels_from_the_page(merchant_a, mona, client_for):
    job = JobFactory(merchant=merchant_a, status=JobStatus.RUNNING)
    client = client_for(mona)
    page = client.get(reverse("modeling:job", kwargs={"merchant": "shop-a", "job_id": job.pk}))
    assert 'data-testid="cancel-job"' in page.content.decode()
    client.post(reverse("modeling:job-cancel", kwargs={"merchant": "shop-a", "job_id": job.pk}))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_jobs_api_lists_filters_and_cancels(merchant_a, merchant_b, mona, api_for):
    running = JobFactory(merchant=merchant_a, status=JobStatus.RUNNING, kind=JobKind.TRAIN)
    JobFactory(merchant=merchant_a, status=JobStatus.SUCCEEDED)
    JobFactory(merchant=merchant_b)
    client = api_for(mona)
    listing = client.get(reverse("api:job-list", kwargs={"merchant": "shop-a"})).json()
    assert listing["count"] == 2
    only = client.get(
        reverse("api:job-list", kwargs={"merchant": "shop-a"}), {"status": "running"}
    ).json()
    assert [j["id"] for j in only["results"]] == [running.pk]
    cancelled = client.post(
        reverse("api:job-cancel", kwargs={"merchant": "shop-a", "job_id": running.pk})
    )
    assert cancelled.json()["status"] == "cancelled"
