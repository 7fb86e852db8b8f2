from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .choices import JobStatus
from .models import Job, RetrainingSchedule
from .services import job_cancel


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "merchant",
        "kind",
        "status",
        "progress",
        "message",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "kind", "merchant", "created_at"]
    search_fields = ["id", "celery_task_id", "message", "error", "merchant__name"]
    list_select_related = ["merchant", "created_by"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Job._meta.fields]
    actions = ["cancel_jobs"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description=_("Cancel the selected jobs"))
    def cancel_jobs(self, request, queryset):
        cancelled = sum(
            job_cancel(job=job, actor=request.user)
            for job in queryset.filter(status__in=JobStatus.active())
        )
        self.message_user(request, _("Cancelled %(n)d jobs.") % {"n": cancelled})


@admin.register(RetrainingSchedule)
class RetrainingScheduleAdmin(admin.ModelAdmin):
    """Inspect merchants' retraining schedules (managers set them on the model page)."""

    list_display = [
        "merchant",
        "enabled",
        "every_days",
        "preset",
        "next_run_at",
        "last_run_at",
        "last_outcome",
    ]
    list_filter = ["enabled", "preset"]
    search_fields = ["merchant__name", "merchant__slug"]
    list_select_related = ["merchant"]
    readonly_fields = ["last_run_at", "last_outcome", "last_version", "updated_by", "updated_at"]
