"""Writes on jobs: create and enqueue, start, report progress, finish, fail, cancel.

Each transition is a conditional UPDATE that checks the current status, so a task delivered twice
(acks_late after a worker crash) or a cancel racing a finish cannot move a job backwards.

A job speaks the language of the person who started it: ``job_enqueue`` records the active
language (the request's, or the command's: ``settings.LANGUAGE_CODE``) in ``params["language"]``,
and the task runs inside it (``modeling.jobtask``), so the messages and errors it stores are
written in that language.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import Task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from campaigns.choices import AuditVerb
from campaigns.models import Merchant
from campaigns.services import audit_record

from .choices import JobKind, JobStatus, ModelStatus
from .models import Job, ModelVersion

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a task when its job was cancelled; the task stops cleanly."""


# The key of Job.params that holds the language the job writes its messages in.
JOB_LANGUAGE = "language"


def _supported_language(code: Any) -> str | None:
    """``code`` as one of ``settings.LANGUAGES`` ("en-us" is "en"), or None."""
    if not isinstance(code, str) or not code:
        return None
    try:
        return translation.get_supported_language_variant(code)
    except LookupError:
        return None


def job_language_now() -> str:
    """The language a job started now speaks: the active one, else ``settings.LANGUAGE_CODE``."""
    return _supported_language(translation.get_language()) or settings.LANGUAGE_CODE


def job_language(job: Job) -> str:
    """The language recorded when the job was enqueued (``settings.LANGUAGE_CODE`` for a job
    from before languages were recorded)."""
    return _supported_language((job.params or {}).get(JOB_LANGUAGE)) or settings.LANGUAGE_CODE


def job_language_of(*, job_id: int) -> str:
    """``job_language`` of the job with this id, from its row (LANGUAGE_CODE when it is gone)."""
    params = Job.objects.filter(pk=job_id).values_list("params", flat=True).first()
    return _supported_language((params or {}).get(JOB_LANGUAGE)) or settings.LANGUAGE_CODE


def job_enqueue(
    *,
    merchant: Merchant,
    kind: JobKind,
    task: Task,
    created_by=None,
    params: dict[str, Any] | None = None,
    queue: str | None = None,
) -> Job:
    """Create a job and send its task once the surrounding transaction commits. The job runs
    in the active language (module doc)."""
    task_id = str(uuid.uuid4())
    job = Job.objects.create(
        merchant=merchant,
        kind=kind,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        params={**(params or {}), JOB_LANGUAGE: job_language_now()},
        celery_task_id=task_id,
        message=_("Queued"),
    )
    options: dict[str, Any] = {"task_id": task_id}
    if queue is not None:
        options["queue"] = queue
    transaction.on_commit(lambda: task.apply_async(args=[job.pk], **options))
    return job


def job_start(*, job_id: int) -> Job | None:
    """Mark a queued job running. None when it is gone, cancelled or already finished."""
    now = timezone.now()
    updated = Job.objects.filter(pk=job_id, status=JobStatus.PENDING).update(
        status=JobStatus.RUNNING, started_at=now, message=pgettext("job progress", "Started")
    )
    if not updated:
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            logger.warning("Job %s does not exist; nothing to run.", job_id)
            return None
        if job.status != JobStatus.RUNNING:
            logger.info("Job %s is %s; not starting it again.", job_id, job.status)
            return None
        # A redelivery of a job whose worker died: run it again from the start.
        return job
    return Job.objects.get(pk=job_id)


def job_report(*, job: Job, progress: int, message: str = "") -> None:
    """Record progress (0-100) and raise JobCancelled if someone cancelled the job meanwhile."""
    progress = max(0, min(100, int(progress)))
    updated = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        progress=progress, message=message[:500]
    )
    if not updated:
        raise JobCancelled(job.pk)
    job.progress, job.message = progress, message[:500]


def job_succeed(
    *, job: Job, result: dict[str, Any] | None = None, message: str | None = None
) -> bool:
    updated = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCEEDED,
        progress=100,
        message=(_("Done") if message is None else message)[:500],
        result=result or {},
        finished_at=timezone.now(),
    )
    return bool(updated)


def job_fail(*, job_id: int, error: str) -> bool:
    updated = Job.objects.filter(pk=job_id, status__in=JobStatus.active()).update(
        status=JobStatus.FAILED,
        error=error[:20000],
        message=_("Failed"),
        finished_at=timezone.now(),
    )
    return bool(updated)


@transaction.atomic
def job_cancel(*, job: Job, actor) -> bool:
    """Cancel a queued or running job. A running task stops at its next progress report."""
    with translation.override(job_language(job)):  # the job's messages keep one language
        cancelled = _("Cancelled")
    updated = Job.objects.filter(pk=job.pk, status__in=JobStatus.active()).update(
        status=JobStatus.CANCELLED, message=cancelled, finished_at=timezone.now()
    )
    if not updated:
        return False
    # A training job's model version ends with it (a queued one would otherwise wait forever).
    ModelVersion.objects.filter(
        job=job, status__in=[ModelStatus.QUEUED, ModelStatus.TRAINING]
    ).update(status=ModelStatus.CANCELLED)
    audit_record(
        merchant=job.merchant,
        actor=actor,
        verb=AuditVerb.JOB_CANCELLED,
        target=str(job),
        data={"job": job.pk, "kind": job.kind},
    )
    task_id = job.celery_task_id
    if task_id:
        from promo_portal.celery import app

        transaction.on_commit(lambda: app.control.revoke(task_id))
    job.refresh_from_db()
    return True


WORKER_QUEUES = ("default", "scoring", "training")


def worker_check_enqueue(*, merchant: Merchant, actor) -> list[Job]:
    """One worker-check job per queue: each reports the worker that served it."""
    from .tasks import worker_check

    return [
        job_enqueue(
            merchant=merchant,
            kind=JobKind.WORKER_CHECK,
            task=worker_check,
            created_by=actor,
            params={"queue": queue, "probe_accelerators": queue == "training"},
            queue=queue,
        )
        for queue in WORKER_QUEUES
    ]


# --- the model registry --------------------------------------------------------------------------


@transaction.atomic
def model_version_promote(
    *, version: ModelVersion, actor, reason: str = "manual", evidence: dict | None = None
) -> ModelVersion:
    """Make a ready version its merchant's champion (the previous one steps down), audited.

    The audit event records who, why (``reason``: "manual" for a manager's choice) and the
    comparison with the champion on the shared held-out split (``evidence``; by default the one
    kept with the version at training, ``modeling.promotion``), including whether the promotion
    rule was met: a manager may promote a version that did not meet it, and the log says so."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != ModelStatus.READY:
        raise ValidationError(_("Only a ready model can become the champion."))
    if version.is_champion:
        return version
    previous = ModelVersion.objects.filter(merchant=version.merchant, is_champion=True).first()
    ModelVersion.objects.filter(merchant=version.merchant, is_champion=True).update(
        is_champion=False
    )
    ModelVersion.objects.filter(pk=version.pk).update(is_champion=True)
    version.is_champion = True
    audit_record(
        merchant=version.merchant,
        actor=actor,
        verb=AuditVerb.MODEL_PROMOTED,
        target=str(version),
        data={
            "version": version.number,
            "previous": previous.number if previous else None,
            "reason": reason,
            **_promotion_evidence(version, previous, evidence),
        },
    )
    return version


def _promotion_evidence(
    version: ModelVersion, previous: ModelVersion | None, evidence: dict | None
) -> dict:
    """The comparison behind a promotion, for the audit log (empty without one)."""
    evidence = evidence or (version.evaluation or {}).get("champion_comparison")
    if not evidence:
        return {}
    difference = evidence.get("difference") or {}
    return {
        "rule": evidence.get("rule"),
        "rule_met": bool(evidence.get("promote")),
        "compared_with": evidence.get("champion"),
        # False when the comparison was with another champion than the one stepping down.
        "compared_with_previous": previous is not None
        and evidence.get("champion_id") == previous.pk,
        "dr_difference": {k: difference.get(k) for k in ("value", "low", "high")},
        "held_out_rows": evidence.get("rows"),
    }


@transaction.atomic
def model_version_finish(*, version: ModelVersion, **results) -> ModelVersion:
    """Record a finished training; the merchant's first ready model becomes the champion."""
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelStatus.READY, trained_at=timezone.now(), **results
    )
    version.refresh_from_db()
    has_champion = ModelVersion.objects.filter(merchant=version.merchant, is_champion=True)
    if not has_champion.exists():
        version = model_version_promote(version=version, actor=None, reason="first ready model")
    return version


def model_version_next_number(*, merchant: Merchant) -> int:
    last = ModelVersion.objects.filter(merchant=merchant).order_by("-number").first()
    return (last.number if last else 0) + 1
