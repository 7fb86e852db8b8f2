"""Celery tasks of the merchant side. Thin: load, call a service, report progress."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from campaigns.choices import ImportStatus
from campaigns.imports.service import import_run
from campaigns.models import DataImport
from modeling.jobtask import JobFailure, JobTask
from modeling.models import Job


@shared_task(bind=True, base=JobTask, name="campaigns.tasks.run_import")
def run_import(self: JobTask, job: Job, **kwargs: Any) -> dict[str, Any]:
    data_import = DataImport.objects.filter(
        pk=job.params["import_id"], merchant=job.merchant
    ).first()
    if data_import is None:
        raise JobFailure("The import no longer exists.")
    data_import = import_run(
        data_import=data_import,
        progress=lambda percent, message: self.report(job, percent, message),
    )
    if data_import.status != ImportStatus.SUCCEEDED:
        raise JobFailure(data_import.message)
    return {"import_id": data_import.pk, "message": data_import.message}
