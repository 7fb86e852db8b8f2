"""Jobs through a real worker on Redis, writing to PostgreSQL (not eager mode)."""

from __future__ import annotations

import os

import pytest
from celery.result import AsyncResult
from django.urls import reverse

from modeling.choices import JobStatus
from modeling.models import Job
from modeling.services import worker_check_enqueue

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_runs_a_job_on_every_queue_and_updates_its_row(
    celery_worker, merchant_a, alice, client_for
):
    # given one worker-check job per queue, enqueued as the admin action does
    jobs = worker_check_enqueue(merchant=merchant_a, actor=alice)
    # when the worker has finished them (waiting on each task's result, not on a clock)
    for job in jobs:
        AsyncResult(job.celery_task_id).get(timeout=120)
    # then each Job row was updated by the worker process, on its own queue
    for job in Job.objects.filter(pk__in=[j.pk for j in jobs]):
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.progress == 100
        assert job.result["pid"] != os.getpid()
        assert job.result["eager"] is False
        assert job.result["queue"] == job.params["queue"]
        assert job.started_at is not None and job.finished_at >= job.started_at
    # and the job page and API show it
    job = jobs[0]
    page = client_for(alice).get(
        reverse("modeling:job", kwargs={"merchant": "shop-a", "job_id": job.pk})
    )
    assert "Succeeded" in page.content.decode()


def test_the_api_shows_a_workers_job(celery_worker, merchant_a, alice, api_for):
    job = worker_check_enqueue(merchant=merchant_a, actor=alice)[0]
    AsyncResult(job.celery_task_id).get(timeout=120)
    data = (
        api_for(alice)
        .get(reverse("api:job-detail", kwargs={"merchant": "shop-a", "job_id": job.pk}))
        .json()
    )
    assert data["status"] == "succeeded"
    assert data["result"]["hostname"]
