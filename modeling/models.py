"""Long-running jobs and the model registry (one ModelVersion per trained uplift model)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.models import Merchant

from .choices import JobKind, JobStatus, ModelPreset, ModelStatus


class Job(models.Model):
    """One long task (import, training, scoring ...): what pages and the API show as progress."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(_("kind"), max_length=20, choices=JobKind.choices)
    status = models.CharField(
        _("status"), max_length=12, choices=JobStatus.choices, default=JobStatus.PENDING
    )
    progress = models.PositiveSmallIntegerField(_("progress"), default=0)
    message = models.CharField(_("message"), max_length=500, blank=True)
    error = models.TextField(_("error"), blank=True)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    result = models.JSONField(_("result"), default=dict, blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        indexes = [models.Index(fields=["merchant", "-created_at"], name="job_merchant_time")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__gte=0, progress__lte=100), name="job_progress_0_100"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=JobStatus.values), name="job_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_status_display()})"

    @property
    def is_active(self) -> bool:
        return self.status in JobStatus.active()

    @property
    def duration(self):
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class ModelVersion(models.Model):
    """One uplift model of a merchant: how it was trained, on what, how good it is, where it is.

    At most one version per merchant is the champion (a database constraint): the one whose
    scores strategies are proposed from.
    """

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField(_("version"))
    status = models.CharField(
        _("status"), max_length=12, choices=ModelStatus.choices, default=ModelStatus.QUEUED
    )
    preset = models.CharField(
        _("size"), max_length=8, choices=ModelPreset.choices, default=ModelPreset.SMALL
    )
    hyperparameters = models.JSONField(_("hyper-parameters"), default=dict, blank=True)
    arms = models.JSONField(_("arms"), default=list, blank=True)
    data_counts = models.JSONField(_("data"), default=dict, blank=True)
    training_curves = models.JSONField(_("training curves"), default=dict, blank=True)
    evaluation = models.JSONField(_("evaluation"), default=dict, blank=True)
    # Per-segment sizes, traits and predicted uplift of the scored customers
    # (modeling.segment_service), computed once when scoring finishes so pages read one row.
    segment_summary = models.JSONField(_("segment summary"), default=dict, blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    is_champion = models.BooleanField(_("champion"), default=False)
    error = models.TextField(_("error"), blank=True)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    trained_at = models.DateTimeField(_("trained"), null=True, blank=True)
    scored_at = models.DateTimeField(_("customers scored"), null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        verbose_name = _("model version")
        verbose_name_plural = _("model versions")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "number"], name="model_version_number"),
            models.UniqueConstraint(
                fields=["merchant"],
                condition=models.Q(is_champion=True),
                name="model_version_one_champion",
            ),
            models.CheckConstraint(
                condition=models.Q(is_champion=False) | models.Q(status=ModelStatus.READY),
                name="model_version_champion_is_ready",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.number} ({self.get_status_display()})"


class ScoreChunk(models.Model):
    """One chunk of a version's customer scores: a Parquet file of customer id and, per arm,
    P(convert) and expected order value. Written atomically; scoring a chunk again replaces
    its file and this row, so nothing is written twice."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="score_chunks")
    index = models.PositiveIntegerField()
    first_customer_id = models.BigIntegerField()
    last_customer_id = models.BigIntegerField()
    rows = models.PositiveIntegerField()
    path = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["version", "index"]
        constraints = [
            models.UniqueConstraint(fields=["version", "index"], name="score_chunk_unique_index"),
        ]

    def __str__(self) -> str:
        return f"{self.version} chunk {self.index} ({self.rows} customers)"


class RetrainingSchedule(models.Model):
    """A merchant's standing order to train a new model version every ``every_days`` days.

    A periodic task (celery beat, ``modeling.tasks.retrain_due_merchants``) queues the training
    of every merchant whose ``next_run_at`` has passed; the new version becomes champion only by
    the promotion rule (``modeling.promotion``). With ``only_with_new_data`` a due merchant is
    skipped (and asked again next period) when no randomized row came in since the champion was
    trained: the same data would train the same model.
    """

    merchant = models.OneToOneField(
        Merchant, on_delete=models.CASCADE, related_name="retraining_schedule"
    )
    enabled = models.BooleanField(_("retrain on a schedule"), default=False)
    every_days = models.PositiveSmallIntegerField(_("every (days)"), default=7)
    preset = models.CharField(
        _("size"), max_length=8, choices=ModelPreset.choices, default=ModelPreset.SMALL
    )
    epochs = models.PositiveSmallIntegerField(_("epochs"), default=20)
    only_with_new_data = models.BooleanField(
        _("only when new randomized data came in"), default=True
    )
    next_run_at = models.DateTimeField(_("next run"), null=True, blank=True)
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True)
    last_outcome = models.CharField(_("last outcome"), max_length=200, blank=True)
    last_version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("retraining schedule")
        verbose_name_plural = _("retraining schedules")
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="retraining_due")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(every_days__gte=1, every_days__lte=365),
                name="retraining_every_1_365_days",
            ),
            models.CheckConstraint(
                condition=models.Q(epochs__gte=1, epochs__lte=200), name="retraining_epochs_1_200"
            ),
        ]

    def __str__(self) -> str:
        state = f"every {self.every_days} d" if self.enabled else "off"
        return f"{self.merchant} retraining ({state})"
