"""Celery tasks of the merchant side. Thin: load, call a service, report progress."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from celery import shared_task
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from campaigns.assignments import campaigns_complete_ended, strategy_apply
from campaigns.choices import ImportStatus
from campaigns.imports.service import import_run
from campaigns.models import Campaign, DataImport, Strategy
from campaigns.strategies import StrategyError, strategy_compute, strategy_numbers
from modeling.jobtask import JobFailure, JobTask
from modeling.models import Job, ModelVersion


@shared_task(bind=True, base=JobTask, name="campaigns.tasks.run_import")
def run_import(self: JobTask, job: Job, **kwargs: Any) -> dict[str, Any]:
    data_import = DataImport.objects.filter(
        pk=job.params["import_id"], merchant=job.merchant
    ).first()
    if data_import is None:
        raise JobFailure(_("The import no longer exists."))
    data_import = import_run(
        data_import=data_import,
        progress=lambda percent, message: self.report(job, percent, message),
    )
    if data_import.status != ImportStatus.SUCCEEDED:
        raise JobFailure(data_import.message)
    return {"import_id": data_import.pk, "message": data_import.message}


@shared_task(
    bind=True,
    base=JobTask,
    name="campaigns.tasks.propose_strategy",
    soft_time_limit=20 * 60,
    time_limit=22 * 60,
)
def propose_strategy(self: JobTask, job: Job, **kwargs: Any) -> dict[str, Any]:
    """Compute one proposed strategy from a model version's scores (queue `default`)."""
    campaign = Campaign.objects.filter(pk=job.params["campaign_id"], merchant=job.merchant).first()
    version = ModelVersion.objects.filter(
        pk=job.params["version_id"], merchant=job.merchant
    ).first()
    if campaign is None or version is None:
        raise JobFailure(_("The campaign or the model version no longer exists."))
    budget = job.params.get("budget")
    try:
        strategy = strategy_compute(
            campaign=campaign,
            version=version,
            actor=job.created_by,
            budget=None if budget is None else Decimal(budget),
            job=job,
            report=lambda percent, message: self.report(job, percent, message),
        )
    except StrategyError as error:
        raise JobFailure(str(error)) from None
    return {
        **strategy_numbers(strategy),
        "strategy_id": strategy.pk,
        "message": _(
            "Strategy #%(id)s proposed: expected profit %(profit)s for %(cost)s of coupons"
        )
        % {
            "id": strategy.pk,
            "profit": f"{strategy.expected_profit:,.2f}",
            "cost": f"{strategy.expected_cost:,.2f}",
        },
    }


@shared_task(
    bind=True,
    base=JobTask,
    name="campaigns.tasks.apply_strategy",
    soft_time_limit=20 * 60,
    time_limit=22 * 60,
)
def apply_strategy(self: JobTask, job: Job, **kwargs: Any) -> dict[str, Any]:
    """Create a strategy's assignments (queue `default`); safe to deliver twice."""
    strategy = Strategy.objects.filter(pk=job.params["strategy_id"], merchant=job.merchant).first()
    if strategy is None:
        raise JobFailure(_("The strategy no longer exists."))
    try:
        result = strategy_apply(
            strategy=strategy,
            actor=job.created_by,
            report=lambda percent, message: self.report(job, percent, message),
        )
    except ValidationError as error:
        raise JobFailure(" ".join(error.messages)) from None
    message = (
        _("Strategy #%(id)s was applied already") % {"id": strategy.pk}
        if result.already_applied
        else _("Strategy #%(id)s applied: %(n)s assignments")
        % {"id": strategy.pk, "n": f"{result.created:,}"}
    )
    return {
        "strategy_id": strategy.pk,
        "created": result.created,
        "already_applied": result.already_applied,
        "message": message,
    }


@shared_task(name="campaigns.tasks.complete_ended_campaigns")
def complete_ended_campaigns() -> int:
    """Periodic (beat): applied campaigns whose end has passed become completed."""
    return campaigns_complete_ended()
