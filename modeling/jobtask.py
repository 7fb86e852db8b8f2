"""The Celery task base for jobs: it starts the Job row, reports failures and cancellations.

A job task is written as ``@shared_task(bind=True, base=JobTask, name=...)`` over a function
``(self, job, **kwargs) -> dict``; it is sent with the job's id and receives the loaded Job. It
reports progress with ``self.report(job, percent, message)`` and never touches statuses itself.
The body runs in the language of the person who started the job (``Job.params["language"]``,
recorded by ``job_enqueue``): what it reports and returns as ``message`` is marked for
translation, and stored in that language.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import translation
from django.utils.translation import gettext as _

from .models import Job
from .services import (
    JobCancelled,
    job_fail,
    job_language_of,
    job_report,
    job_start,
    job_succeed,
)

logger = logging.getLogger(__name__)


class JobFailure(Exception):
    """An expected failure with a message for people (bad input ...): no traceback is kept."""


class JobTask(Task):
    """Runs the task body inside its job's lifecycle. Safe to deliver twice."""

    abstract = True

    def report(self, job: Job, progress: int, message: str = "") -> None:
        job_report(job=job, progress=progress, message=message)

    def __call__(self, job_id: int, **kwargs: Any) -> dict[str, Any] | None:
        with translation.override(job_language_of(job_id=job_id)):
            return self._run_job(job_id, **kwargs)

    def _run_job(self, job_id: int, **kwargs: Any) -> dict[str, Any] | None:
        job = job_start(job_id=job_id)
        if job is None:
            return None
        try:
            result = self.run(job, **kwargs) or {}
        except JobCancelled:
            logger.info("Job %s was cancelled; stopped.", job_id)
            return None
        except JobFailure as failure:
            job_fail(job_id=job_id, error=str(failure))
            return None
        except SoftTimeLimitExceeded:
            job_fail(job_id=job_id, error=_("The job ran past its time limit and was stopped."))
            raise
        except Exception as error:
            job_fail(job_id=job_id, error=f"{error}\n\n{traceback.format_exc()}")
            raise
        if result.get("deferred"):  # a chord's callback finishes this job, not this task
            return result
        message = result.get("message")
        job_succeed(job=job, result=result, message=None if message is None else str(message))
        return result
