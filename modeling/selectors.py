"""Reads on jobs (and, later, model versions and scores)."""

from __future__ import annotations

from django.db.models import FloatField, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from campaigns.models import Merchant

from .models import Job, ModelVersion


def merchant_jobs(*, merchant: Merchant) -> QuerySet[Job]:
    return Job.objects.filter(merchant=merchant).select_related("merchant", "created_by")


def merchant_recent_jobs(*, merchant: Merchant, limit: int = 5) -> list[Job]:
    return list(merchant_jobs(merchant=merchant)[:limit])


def merchant_model_versions(*, merchant: Merchant) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(merchant=merchant).select_related("created_by", "job")


def merchant_champion(*, merchant: Merchant) -> ModelVersion | None:
    return ModelVersion.objects.filter(merchant=merchant, is_champion=True).first()


def merchant_champion_headline(*, merchant: Merchant) -> ModelVersion | None:
    """The champion for a one-line summary: without its large JSON fields, with the mean Qini
    coefficient of its evaluation as ``mean_qini`` (a float, or None)."""
    return (
        ModelVersion.objects.filter(merchant=merchant, is_champion=True)
        .defer("evaluation", "training_curves", "segment_summary", "hyperparameters")
        .annotate(mean_qini=Cast(KT("evaluation__mean_qini_coefficient"), FloatField()))
        .first()
    )
