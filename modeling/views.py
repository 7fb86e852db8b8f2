"""Job pages (list, live progress, cancel) and the model registry (list, one version, promote)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import DetailView, ListView

from campaigns.tenancy import MerchantViewMixin

from . import selectors, services
from .choices import ModelPreset
from .models import Job, ModelVersion
from .scoring_service import ScoringError, model_version_score
from .training_service import model_version_train


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


class ModelListView(MerchantViewMixin, ListView):
    """The model registry: every version with its status, data and headline quality."""

    template_name = "modeling/model_list.html"
    context_object_name = "versions"
    paginate_by = 25

    def get_queryset(self):
        return selectors.merchant_model_versions(merchant=self.merchant)


class ModelDetailView(MerchantViewMixin, DetailView):
    template_name = "modeling/model_detail.html"
    context_object_name = "version"
    pk_url_kwarg = "version_id"

    def get_queryset(self):
        return selectors.merchant_model_versions(merchant=self.merchant)


class ModelPromoteView(MerchantViewMixin, View):
    """A manager's explicit choice of champion (recorded in the audit log)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str, version_id: int) -> HttpResponse:
        version = get_object_or_404(self.scoped(ModelVersion), pk=version_id)
        try:
            services.model_version_promote(version=version, actor=request.user)
            messages.success(
                request, _("Version %(n)s is now the champion.") % {"n": version.number}
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        return redirect("modeling:model", merchant=self.merchant.slug, version_id=version.pk)


class ModelTrainView(MerchantViewMixin, View):
    """Queue the training of a new model version on the `training` queue."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str) -> HttpResponse:
        preset = request.POST.get("preset", ModelPreset.SMALL)
        if preset not in ModelPreset.values:
            preset = ModelPreset.SMALL
        version = model_version_train(merchant=self.merchant, actor=request.user, preset=preset)
        messages.success(
            request, _("Training of model v%(n)s has started.") % {"n": version.number}
        )
        return redirect("modeling:model", merchant=self.merchant.slug, version_id=version.pk)


class ModelScoreView(MerchantViewMixin, View):
    """Score every customer with this version (a job on the `scoring` queue)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str, version_id: int) -> HttpResponse:
        version = get_object_or_404(self.scoped(ModelVersion), pk=version_id)
        try:
            job = model_version_score(version=version, actor=request.user)
        except ScoringError as error:
            messages.error(request, str(error))
            return redirect("modeling:model", merchant=self.merchant.slug, version_id=version.pk)
        messages.success(request, _("Scoring has started."))
        return redirect("modeling:job", merchant=self.merchant.slug, job_id=job.pk)
