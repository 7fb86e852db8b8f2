"""Job pages (list, live progress, cancel) and the model registry (list, one version, promote)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import DetailView, ListView, TemplateView

from campaigns.choices import lifecycle_label
from campaigns.selectors import merchant_latest_realized
from campaigns.tenancy import MerchantViewMixin

from . import charts, selectors, services
from .choices import ModelPreset, ModelStatus
from .models import Job, ModelVersion
from .scoring_service import ScoringError, model_version_score
from .segment_service import LIFECYCLE, model_version_segments
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


VERSIONS_SHOWN = 10  # the newest versions listed beside one version


def _training_context(version: ModelVersion) -> dict:
    return {
        "is_training": version.status in (ModelStatus.QUEUED, ModelStatus.TRAINING),
        "training_figures": charts.training_figures(version.training_curves or {}),
        "epochs_done": len((version.training_curves or {}).get("epochs") or []),
        "epochs_planned": (version.hyperparameters or {}).get("epochs"),
    }


class ModelDetailView(MerchantViewMixin, DetailView):
    """One version: live training progress, then its held-out evaluation beside the baselines
    (Qini curves per coupon, metrics with intervals, calibration) and the other versions."""

    template_name = "modeling/model_detail.html"
    context_object_name = "version"
    pk_url_kwarg = "version_id"

    def get_queryset(self):
        return selectors.merchant_model_versions(merchant=self.merchant)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        version = self.object
        evaluation = version.evaluation or {}
        context.update(_training_context(version))
        context.update(
            qini_figures=charts.qini_figures(evaluation),
            calibration_figure=charts.calibration_figure(evaluation),
            tables=charts.evaluation_tables(evaluation) if evaluation.get("arms") else None,
            other_versions=list(
                ModelVersion.objects.filter(merchant=self.merchant).only(
                    "pk", "number", "status", "is_champion", "trained_at"
                )[:VERSIONS_SHOWN]
            ),
        )
        return context


class ModelTrainingProgressView(ModelDetailView):
    """The training-progress fragment (epoch, loss curves) the model page polls while the
    version trains; when training ends, a poll asks htmx to reload the page once so the
    evaluation appears."""

    template_name = "modeling/_training_progress.html"

    def get_context_data(self, **kwargs):
        context = DetailView.get_context_data(self, **kwargs)
        context.update(merchant=self.merchant, membership=self.membership)
        context.update(_training_context(self.object))
        return context

    def render_to_response(self, context, **kwargs):
        response = super().render_to_response(context, **kwargs)
        polled = self.request.headers.get("HX-Request") and self.request.GET.get("poll")
        if polled and not context["is_training"]:
            response["HX-Refresh"] = "true"
        return response


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


class RetrainingScheduleView(MerchantViewMixin, View):
    """Set the merchant's retraining schedule (managers; audited)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str) -> HttpResponse:
        from .retraining_service import merchant_retraining_schedule, retraining_schedule_update

        current = merchant_retraining_schedule(merchant=self.merchant)
        try:
            every_days = int(request.POST.get("every_days") or current.every_days)
            retraining_schedule_update(
                merchant=self.merchant,
                actor=request.user,
                enabled=bool(request.POST.get("enabled")),
                every_days=every_days,
                preset=request.POST.get("preset") or current.preset,
                only_with_new_data=bool(request.POST.get("only_with_new_data")),
            )
            messages.success(request, _("The retraining schedule was saved."))
        except ValueError:
            messages.error(request, _("Retrain every 1 to 365 days."))
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        target = request.POST.get("next") or ""
        if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            return redirect(target)
        return redirect("modeling:models", merchant=self.merchant.slug)


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


class SegmentsView(MerchantViewMixin, TemplateView):
    """Per segment (lifecycle stages, uplift deciles of the champion's scores): size, traits,
    predicted uplift per coupon with 95 % intervals, and (once outcomes exist) realized uplift."""

    template_name = "modeling/segments.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        champion = selectors.merchant_champion(merchant=self.merchant)
        summary = model_version_segments(version=champion) if champion is not None else None
        realized = merchant_latest_realized(merchant=self.merchant) if summary else None
        groups = []
        for group in (summary or {}).get("groups", []):
            is_lifecycle = group["kind"] == LIFECYCLE
            observed = _realized_by_segment(realized, champion, is_lifecycle)
            segments = [
                {
                    **_segment_row(segment, summary["coupons"], is_lifecycle),
                    "realized": observed.get(str(segment["key"])) if observed is not None else None,
                }
                for segment in group["segments"]
            ]
            title = _("Lifecycle segments") if is_lifecycle else _("Deciles of predicted uplift")
            groups.append(
                {
                    "kind": group["kind"],
                    "json_id": f"segments-{group['kind']}-data",
                    "title": title,
                    "segments": segments,
                    "figure": charts.segment_uplift_figure(
                        title=_("%(title)s: predicted uplift per coupon") % {"title": title},
                        labels=[s["label"] for s in segments],
                        segments=segments,
                        coupons=summary["coupons"],
                    ),
                }
            )
        context.update(champion=champion, summary=summary, groups=groups, realized=realized)
        return context


def _realized_by_segment(realized, champion, is_lifecycle: bool) -> dict[str, dict] | None:
    """Realized uplift per segment key from an applied strategy's results, or None where they
    do not apply: no results yet, or uplift deciles of another model than the champion (its
    deciles rank customers differently)."""
    if realized is None:
        return None
    if not is_lifecycle and realized.strategy.model_version_id != champion.pk:
        return None
    rows = (realized.data.get("segments") or {}).get(
        "lifecycle" if is_lifecycle else "uplift_deciles", []
    )
    return {str(row["key"]): _realized_cell(row) for row in rows}


def _realized_cell(row: dict) -> dict:
    """One segment's realized conversion uplift (pp, with its 95 % interval) and group sizes."""
    uplift = row.get("conversion_rate") if row.get("enough") else None
    return {
        "enough": bool(row.get("enough")),
        "treated": (row.get("treated") or {}).get("customers", 0),
        "control": (row.get("control") or {}).get("customers", 0),
        "uplift_pp": None
        if uplift is None
        else {
            "value": 100.0 * uplift["difference"],
            "low": 100.0 * uplift["low"],
            "high": 100.0 * uplift["high"],
        },
        "significant": bool(uplift and uplift.get("significant")),
    }


def _segment_label(key: str, is_lifecycle: bool) -> str:
    if is_lifecycle:
        return lifecycle_label(key)
    return _("Decile %(n)s") % {"n": key}


def _scaled(entry: dict | None, factor: float) -> dict | None:
    if entry is None:
        return None
    return {k: (None if v is None else v * factor) for k, v in entry.items()}


def _segment_row(segment: dict, coupons: list[str], is_lifecycle: bool) -> dict:
    """One table row: rates in percent, uplift in percentage points, values in currency."""
    p_control = segment.get("p_control")
    values = segment.get("incremental_value") or {}
    return {
        **segment,
        "label": _segment_label(segment["key"], is_lifecycle),
        "share_pct": 100.0 * segment["share"],
        "p_control_pct": None if p_control is None else 100.0 * p_control,
        "per_coupon": [
            {
                "coupon": coupon,
                "uplift_pp": _scaled((segment.get("uplift") or {}).get(coupon), 100.0),
                "value": values.get(coupon),
            }
            for coupon in coupons
        ],
    }
