"""Background jobs speak the language of whoever started them (issue 6 point 8): the language
active when a job is queued is kept in it, and what the job stores for people (progress and
result messages, errors, import problems) comes out in that language, whatever language the
worker has active. Management commands speak the site's language.

Queued tasks run here by hand, under the *other* language, as a worker that knows nothing of
the request would."""

from __future__ import annotations

import re
import socket
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone, translation

from campaigns.choices import ImportSource, ImportStatus
from campaigns.data_views import ColumnMappingForm
from campaigns.imports import service
from campaigns.models import Customer, DataImport, Event, UserPreference
from modeling import jobtask, services
from modeling.choices import JobKind, JobStatus
from modeling.models import Job
from modeling.retraining_service import retraining_run_due, retraining_schedule_update
from modeling.tasks import worker_check
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

HAN = re.compile(r"[\u4e00-\u9fff]")
OTHER = {"en": "zh-hans", "zh-hans": "en"}
HEADER = "customer_id,timestamp,event_type,item_id,category,price,quantity\n"
GOOD = HEADER + "C1,2026-01-05 10:00:00,view,I1,tea,12.5,\nC2,2026-01-06 09:00:00,search,,,,\n"
BAD = HEADER + "C1,2026-01-05 10:00:00,view,I1,tea,12.5,\nC1,yesterday,view,I1,tea,12.5,\n"

# What the imports above store, per language.
SUCCEEDED = {
    "en": "2 rows: 2 added, 2 new customers created.",
    "zh-hans": "共 2 行：新增 2 行，新建 2 位客户。",  # noqa: RUF001
}
REJECTED = {
    "en": "1 problems found; nothing was imported.",
    "zh-hans": "发现 1 个问题；未导入任何数据。",  # noqa: RUF001
}
NOT_A_TIME = {"en": "not a date and time; use ISO 8601", "zh-hans": "不是日期时间；请使用 ISO 8601"}  # noqa: RUF001
FAILED = {"en": "Failed", "zh-hans": "失败"}


def _prefer(user, language: str) -> None:
    UserPreference.objects.update_or_create(user=user, defaults={"language": language})


def _run_as_a_worker(callbacks, language: str) -> None:
    """Send the queued tasks (eagerly) with ``language`` active, as a worker might have."""
    with translation.override(language):
        for callback in callbacks:
            callback()


def _import_as(merchant, actor, content: str, tmp_path, language: str, capture) -> DataImport:
    """Store and start an import with ``language`` active, as the upload page does; the task is
    then run under the other language."""
    path = tmp_path / f"events-{DataImport.objects.count()}.csv"
    path.write_text(content)
    with translation.override(language), capture() as callbacks:
        data_import = service.import_create_from_file(
            merchant=merchant,
            kind="events",
            path=path,
            filename=path.name,
            actor=actor,
            source=ImportSource.UPLOAD,
        )
        service.import_configure(
            data_import=data_import,
            mapping=data_import.column_mapping,
            create_missing_customers=True,
        )
        service.import_start(data_import=data_import, actor=actor)
    assert callbacks, "the import's task was not queued"
    _run_as_a_worker(callbacks, OTHER[language])
    data_import.refresh_from_db()
    return data_import


# --- imports run as jobs -------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_an_import_job_writes_in_the_language_it_was_started_in(
    merchant_a, mona, tmp_path, django_capture_on_commit_callbacks, language
):
    # given a file whose rows are fine, started in one language, run under the other
    done = _import_as(
        merchant_a, mona, GOOD, tmp_path, language, django_capture_on_commit_callbacks
    )

    # then the job kept the language, and its messages are in it
    assert done.status == ImportStatus.SUCCEEDED, done.errors
    assert done.job.params["language"] == language
    assert done.message == SUCCEEDED[language]
    assert done.job.status == JobStatus.SUCCEEDED
    assert done.job.message == done.job.result["message"] == SUCCEEDED[language]

    # and a file with a bad row: its problem's reason and the job's error are in it too
    rejected = _import_as(
        merchant_a, mona, BAD, tmp_path, language, django_capture_on_commit_callbacks
    )
    assert rejected.status == ImportStatus.REJECTED
    assert rejected.message == REJECTED[language]
    ((line, column, reason),) = [(e["line"], e["column"], e["reason"]) for e in rejected.errors]
    assert (line, column) == (3, "timestamp")
    assert reason.startswith(NOT_A_TIME[language])
    assert bool(HAN.search(reason)) == (language == "zh-hans")
    job = rejected.job
    assert job.params["language"] == language
    assert (job.status, job.message, job.error) == (
        JobStatus.FAILED,
        FAILED[language],
        REJECTED[language],
    )


def _mapping_post(data_import: DataImport) -> dict[str, str]:
    """The mapping form's POST with its pre-filled choices (the file's names are the schema's)."""
    header, _rows = service.import_preview(data_import=data_import, rows=0)
    form = ColumnMappingForm(
        kind=data_import.kind, header=header, mapping=data_import.column_mapping
    )
    return {form.field_name(i): form.fields[form.field_name(i)].initial for i in range(len(header))}


def test_a_manager_who_chose_chinese_gets_the_import_problems_in_chinese(
    merchant_a, mona, client_for, django_capture_on_commit_callbacks
):
    # given mona chose Chinese, and C1 is a customer of the shop
    _prefer(mona, "zh-hans")
    Customer.objects.create(merchant=merchant_a, external_id="C1")
    client = client_for(mona)
    kwargs = {"merchant": merchant_a.slug}

    # when she uploads a file with a bad row and starts its import (her browser asks for English)
    response = client.post(
        reverse("data:upload", kwargs=kwargs),
        {"kind": "events", "file": SimpleUploadedFile("e.csv", BAD.encode(), "text/csv")},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 302
    data_import = DataImport.objects.latest("id")
    start = reverse("data:import-start", kwargs={**kwargs, "import_id": data_import.pk})
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post(start, _mapping_post(data_import)).status_code == 302
    _run_as_a_worker(callbacks, "en")

    # then the stored problem and messages are in Chinese, and nothing was imported
    data_import.refresh_from_db()
    assert data_import.status == ImportStatus.REJECTED
    assert Event.objects.count() == 0
    assert data_import.job.params["language"] == "zh-hans"
    assert data_import.message == REJECTED["zh-hans"]
    (problem,) = data_import.errors
    assert problem["reason"].startswith(NOT_A_TIME["zh-hans"])
    # and the import page shows them
    page = client.get(
        reverse("data:import", kwargs={**kwargs, "import_id": data_import.pk})
    ).content.decode()
    assert NOT_A_TIME["zh-hans"] in page and REJECTED["zh-hans"] in page


# --- the task base -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "started", "picked_up", "served"),
    [
        ("zh-hans", "已开始", "已由 {host} 接收", "工作进程 {host} 处理了队列 default"),
        ("en", "Started", "Picked up by {host}", "Worker {host} served queue default"),
    ],
)
def test_a_worker_check_reports_in_its_starters_language(
    merchant_a, alice, monkeypatch, django_capture_on_commit_callbacks, language, started,
    picked_up, served,
):  # fmt: skip
    host = socket.gethostname()
    reported: list[tuple[str, str]] = []  # (the stored message before the report, the report)

    def spy(*, job, progress, message=""):
        reported.append((Job.objects.get(pk=job.pk).message, message))
        services.job_report(job=job, progress=progress, message=message)

    monkeypatch.setattr(jobtask, "job_report", spy)

    # given alice queues a worker check with her language active (the admin action's request)
    with translation.override(language), django_capture_on_commit_callbacks() as callbacks:
        job = services.job_enqueue(
            merchant=merchant_a,
            kind=JobKind.WORKER_CHECK,
            task=worker_check,
            created_by=alice,
            params={"queue": "default"},
            queue="default",
        )
    assert job.params == {"queue": "default", "language": language}

    # when a worker with the other language active runs it
    _run_as_a_worker(callbacks, OTHER[language])

    # then its start, its progress and its result are in her language
    job.refresh_from_db()
    assert reported == [(started, picked_up.format(host=host))]
    assert job.status == JobStatus.SUCCEEDED
    assert job.message == job.result["message"] == served.format(host=host)


def test_a_job_from_before_languages_were_recorded_runs_in_the_sites(merchant_a):
    job = JobFactory(merchant=merchant_a, params={"queue": "default"})
    with translation.override("zh-hans"):
        worker_check.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.message.startswith("Worker ") and not HAN.search(job.message)


def test_cancelling_writes_in_the_jobs_language(merchant_a, alice):
    job = JobFactory(merchant=merchant_a, params={"language": "zh-hans"})
    with translation.override("en"):  # the one who cancels reads English
        assert services.job_cancel(job=job, actor=alice)
    job.refresh_from_db()
    assert (job.status, job.message) == (JobStatus.CANCELLED, "已取消")


def test_a_scheduled_retraining_speaks_the_language_of_who_set_it(
    merchant_a, mona, django_capture_on_commit_callbacks
):
    # given mona, who chose Chinese, turned retraining on
    _prefer(mona, "zh-hans")
    now = timezone.now()
    retraining_schedule_update(merchant=merchant_a, actor=mona, enabled=True, every_days=7, now=now)

    # when beat (no request, English active) finds it due
    with translation.override("en"), django_capture_on_commit_callbacks() as callbacks:
        (schedule,) = retraining_run_due(now=now + timedelta(days=8))

    # then its outcome, and the training job it queued, are in Chinese (the job is not run here)
    version = schedule.last_version
    assert schedule.last_outcome == f"已将 v{version.number} 加入训练队列"
    assert version.job.params["language"] == "zh-hans"
    assert version.job.message == "排队中"
    assert callbacks


# --- management commands -------------------------------------------------------------------------


def test_a_command_import_stays_in_the_sites_language(merchant_a, mona, tmp_path, capsys):
    # given a process with Chinese active (a command called from code after a Chinese request)
    _prefer(mona, "zh-hans")
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(GOOD)
    bad.write_text(BAD)
    with translation.override("zh-hans"):
        # when the import commands run
        call_command(
            "import_events",
            str(good),
            "--merchant",
            "shop-a",
            "--create-customers",
            "--no-progress",
        )
        with pytest.raises(CommandError) as rejected:
            call_command("import_events", str(bad), "--merchant", "shop-a", "--no-progress")

    # then what they store and print is in English, the site's language
    done, failed = DataImport.objects.order_by("id")
    assert (done.status, done.message) == (ImportStatus.SUCCEEDED, SUCCEEDED["en"])
    assert (failed.status, failed.message) == (ImportStatus.REJECTED, REJECTED["en"])
    assert str(rejected.value) == REJECTED["en"]
    assert failed.errors[0]["reason"].startswith(NOT_A_TIME["en"])
    output = capsys.readouterr()
    assert SUCCEEDED["en"] in output.out
    assert "line 3, column timestamp ('yesterday'): not a date and time" in output.err
    assert not HAN.search(output.out + output.err)
    assert not Job.objects.exists()  # a command imports synchronously: no job
