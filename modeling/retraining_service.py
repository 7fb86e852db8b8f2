"""Retraining on a schedule: a merchant's standing order, and the periodic task that serves it.

``retraining_schedule_update`` sets a merchant's schedule (managers, on the model page;
audited as a merchant settings change). Celery beat runs ``modeling.tasks.retrain_due_merchants``
every ``RETRAIN_CHECK_SECONDS`` (``CELERY_BEAT_SCHEDULE``; beat keeps it in its database
schedule, django-celery-beat); it calls ``retraining_run_due``, which claims every schedule whose
``next_run_at`` has passed with a conditional update (two beats, or a task delivered twice,
queue one training, not two), moves it on by its period, and queues the training of a new
version on the `training` queue, unless a version is training already or, with
``only_with_new_data``, no treatments or outcomes were imported since the champion was trained.
The new version becomes champion only by the promotion rule (``modeling.promotion``).
Beat has no request: a schedule is served in the language of the person who last set it (their
preference, else ``settings.LANGUAGE_CODE``), as the outcome it records and the training job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from campaigns.choices import AuditVerb, ImportKind, ImportStatus
from campaigns.models import DataImport, Merchant
from campaigns.preferences import user_preferred_language
from campaigns.services import audit_record

from .choices import ModelPreset, ModelStatus
from .models import ModelVersion, RetrainingSchedule
from .selectors import merchant_champion

logger = logging.getLogger(__name__)

# How often beat looks for due schedules; a schedule runs at most this late.
RETRAIN_CHECK_SECONDS = 60 * 60


def merchant_retraining_schedule(*, merchant: Merchant) -> RetrainingSchedule:
    """The merchant's schedule (an unsaved, disabled one when none was ever set)."""
    return RetrainingSchedule.objects.filter(merchant=merchant).first() or RetrainingSchedule(
        merchant=merchant
    )


@transaction.atomic
def retraining_schedule_update(
    *,
    merchant: Merchant,
    actor,
    enabled: bool,
    every_days: int,
    preset: str = ModelPreset.SMALL,
    epochs: int | None = None,
    only_with_new_data: bool = True,
    now: datetime | None = None,
) -> RetrainingSchedule:
    """Set the merchant's retraining schedule. Turning it on (or changing the period) plans
    the next run one period after the last run, or from now when there was none."""
    now = now or timezone.now()
    if not 1 <= int(every_days) <= 365:
        raise ValidationError({"every_days": _("Retrain every 1 to 365 days.")})
    if preset not in ModelPreset.values:
        raise ValidationError({"preset": _("Unknown model size.")})
    schedule, _created = RetrainingSchedule.objects.select_for_update().get_or_create(
        merchant=merchant
    )
    schedule.enabled = bool(enabled)
    schedule.every_days = int(every_days)
    schedule.preset = preset
    if epochs is not None:
        schedule.epochs = int(epochs)
    schedule.only_with_new_data = bool(only_with_new_data)
    schedule.next_run_at = (
        (schedule.last_run_at or now) + timedelta(days=schedule.every_days)
        if schedule.enabled
        else None
    )
    schedule.updated_by = actor if actor is not None and actor.is_authenticated else None
    schedule.full_clean(exclude=["merchant", "last_version", "updated_by"])
    schedule.save()
    audit_record(
        merchant=merchant,
        actor=actor,
        verb=AuditVerb.MERCHANT_UPDATED,
        target=str(_("Retraining schedule")),
        data={
            "retraining": {
                "enabled": schedule.enabled,
                "every_days": schedule.every_days,
                "preset": schedule.preset,
                "epochs": schedule.epochs,
                "only_with_new_data": schedule.only_with_new_data,
            }
        },
    )
    return schedule


def new_data_since_champion(*, merchant: Merchant) -> bool:
    """Whether treatments or outcomes were imported since the champion was trained (True
    without a champion)."""
    champion = merchant_champion(merchant=merchant)
    if champion is None or champion.trained_at is None:
        return True
    return DataImport.objects.filter(
        merchant=merchant,
        kind__in=[ImportKind.TREATMENTS, ImportKind.OUTCOMES],
        status=ImportStatus.SUCCEEDED,
        finished_at__gt=champion.trained_at,
    ).exists()


def retraining_run_due(*, now: datetime | None = None) -> list[RetrainingSchedule]:
    """Claim and serve every due schedule (module doc); returns the schedules served, each
    with ``last_outcome`` saying what happened."""
    now = now or timezone.now()
    served = []
    due = RetrainingSchedule.objects.filter(enabled=True, next_run_at__lte=now).select_related(
        "merchant", "updated_by"
    )
    for schedule in due:
        # Claim it: only the run that moves next_run_at on serves it.
        claimed = RetrainingSchedule.objects.filter(
            pk=schedule.pk, enabled=True, next_run_at=schedule.next_run_at
        ).update(next_run_at=now + timedelta(days=schedule.every_days), last_run_at=now)
        if not claimed:
            continue
        with translation.override(_schedule_language(schedule)):
            version, outcome = _serve(schedule)
        RetrainingSchedule.objects.filter(pk=schedule.pk).update(
            last_outcome=outcome, **({"last_version": version} if version is not None else {})
        )
        logger.info("Retraining %s: %s", schedule.merchant.slug, outcome)
        schedule.refresh_from_db()
        served.append(schedule)
    return served


def _schedule_language(schedule: RetrainingSchedule) -> str:
    """The language of whoever last set the schedule, else the site's."""
    user = schedule.updated_by
    return (user_preferred_language(user=user) if user else None) or settings.LANGUAGE_CODE


def _serve(schedule: RetrainingSchedule) -> tuple[ModelVersion | None, str]:
    """Queue the schedule's training unless it is skipped: (the new version, the outcome)."""
    from .training_service import model_version_train

    merchant = schedule.merchant
    training = ModelVersion.objects.filter(
        merchant=merchant, status__in=[ModelStatus.QUEUED, ModelStatus.TRAINING]
    ).exists()
    if training:
        return None, _("skipped: a model version is training already")
    if schedule.only_with_new_data and not new_data_since_champion(merchant=merchant):
        return None, _("skipped: no treatments or outcomes imported since the champion trained")
    version = model_version_train(
        merchant=merchant, actor=None, preset=schedule.preset, epochs=schedule.epochs
    )
    return version, _("queued the training of v%(n)s") % {"n": version.number}
