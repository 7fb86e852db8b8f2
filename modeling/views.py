"""Job pages: the list, one job with live progress, and cancel."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import DetailView, ListView

from campaigns.tenancy import MerchantViewMixin

from . import selectors, services
from .models import Job


class JobListView(MerchantViewMixin, ListView):
    template_name = "modeling/job_list.html"
    context_object_name = "jobs"
    paginate_by = 25

    def get_queryset(self):
        return selectors.merchant_jobs(merchant=self.merchant)


class JobDetailView(MerchantViewMixin, DetailView):
    template_name = "modeling/job_detail.html"
    context_object_name = "job"
    pk_url_kwarg = "job_id"

    def get_queryset(self):
        return selectors.merchant_jobs(merchant=self.merchant)


class JobProgressView(JobDetailView):
    """The progress fragment that the job page (and job lists) poll until the job finishes."""

    template_name = "modeling/_job_progress.html"


class JobCancelView(MerchantViewMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str, job_id: int) -> HttpResponse:
        job = get_object_or_404(self.scoped(Job), pk=job_id)
        if services.job_cancel(job=job, actor=request.user):
            messages.success(request, _("The job was cancelled."))
        else:
            messages.info(request, _("The job had already finished."))
        return redirect("modeling:job", merchant=self.merchant.slug, job_id=job.pk)
