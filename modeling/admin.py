from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .choices import JobStatus
from .models import Job
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
