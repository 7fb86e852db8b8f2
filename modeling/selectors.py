"""Reads on jobs (and, later, model versions and scores)."""

from __future__ import annotations

from django.db.models import QuerySet

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
