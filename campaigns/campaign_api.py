"""REST API for campaigns, strategies and coupon assignments (/api/v1/merchants/{merchant}/...).

Managers and owners create and change campaigns, propose strategies (a job), apply them (a
job) and roll them back; everyone of the merchant reads. Integrators pull assignments: a
filterable, cursor-paginated list (a shop looks up one customer's code with ``?customer=``)
and a streamed CSV export.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, pagination, renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from modeling.api import JobOutput
from modeling.models import ModelVersion

from . import selectors, services
from .api import _raise_drf
from .assignments import (
    EXPORT_HEADER,
    assignment_export_rows,
    strategy_apply_enqueue,
    strategy_rollback,
)
from .choices import AssignmentKind, CampaignGoal, CampaignStatus, StrategyStatus
from .exports import csv_response
from .models import MAX_ATTRIBUTION_WINDOW_DAYS, Assignment, Campaign, Strategy
from .results import strategy_results
from .strategies import strategy_is_applicable, strategy_propose
from .tenancy import MerchantAPIMixin

# --- campaigns ----------------------------------------------------------------------------------


class CampaignOutput(serializers.ModelSerializer):
    coupon_types = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "goal",
            "status",
            "coupon_types",
            "budget",
            "caps",
            "starts_at",
            "ends_at",
            "audience",
            "holdout_share",
            "exploration_share",
            "attribution_window_days",
            "margin_rate",
            "average_order_value",
            "code_prefix",
            "revision",
            "created_by",
            "created_at",
            "updated_at",
        ]


class CampaignInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    goal = serializers.ChoiceField(choices=CampaignGoal.choices, default=CampaignGoal.PROFIT)
    coupon_types = serializers.ListField(
        child=serializers.CharField(max_length=32),
        allow_empty=False,
        help_text="Codes of the merchant's coupon types to offer.",
    )
    budget = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=0,
        help_text="Expected coupon spend, in the merchant's currency.",
    )
    caps = serializers.DictField(
        child=serializers.IntegerField(min_value=0),
        required=False,
        help_text="Coupon code -> the most customers who may get it.",
    )
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    audience = serializers.JSONField(
        required=False,
        help_text=(
            'Optional filters: {"lifecycle": ["active", ...], "min_uplift": 0.01, '
            '"max_uplift": 0.5, "attributes": {"member_level": ["gold"]}}.'
        ),
    )
    holdout_share = serializers.FloatField(min_value=0, max_value=0.99, required=False)
    exploration_share = serializers.FloatField(min_value=0, max_value=0.99, required=False)
    attribution_window_days = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ATTRIBUTION_WINDOW_DAYS,
        required=False,
        help_text="Orders count for the campaign this many days from when its coupons can "
        "first be used (the later of the assignment and the campaign's start); default 14.",
    )
    margin_rate = serializers.FloatField(
        min_value=0.0001,
        max_value=1,
        required=False,
        allow_null=True,
        help_text="Gross margin as a share of order value; default 0.3.",
    )
    average_order_value = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
        required=False,
        allow_null=True,
        help_text="Defaults to the mean revenue of converted orders in the merchant's data.",
    )
    code_prefix = serializers.CharField(max_length=12, required=False, allow_blank=True)

    def validate(self, data):
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            raise serializers.ValidationError({"ends_at": "The campaign must end after it starts."})
        return data


@extend_schema(tags=["campaigns"])
@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("status", enum=CampaignStatus.values, required=False)]
    )
)
class CampaignApi(
    MerchantAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The merchant's campaigns. Managers create and change them and propose strategies."""

    model = Campaign
    serializer_class = CampaignOutput
    lookup_url_kwarg = "campaign_id"

    class ProposeInput(serializers.Serializer):
        budget = serializers.DecimalField(
            max_digits=14,
            decimal_places=2,
            min_value=0,
            required=False,
            allow_null=True,
            help_text="Override the campaign's budget for this proposal.",
        )
        model_version = serializers.IntegerField(
            required=False,
            allow_null=True,
            help_text="Id of the model version to use; default: the champion.",
        )

    def get_queryset(self):
        queryset = selectors.merchant_campaigns(merchant=self.merchant)
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in CampaignStatus.values:
                raise serializers.ValidationError({"status": "Unknown status."})
            queryset = queryset.filter(status=wanted)
        return queryset

    @extend_schema(request=CampaignInput, responses={201: CampaignOutput})
    def create(self, request, **kwargs):
        data = CampaignInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            campaign = services.campaign_create(
                merchant=self.merchant, actor=request.user, **data.validated_data
            )
        except DjangoValidationError as error:
            _raise_drf(error)
        return Response(CampaignOutput(campaign).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CampaignInput(partial=True), responses=CampaignOutput)
    def partial_update(self, request, **kwargs):
        campaign = self.get_object()
        data = CampaignInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        try:
            campaign = services.campaign_update(
                campaign=campaign, actor=request.user, **data.validated_data
            )
        except DjangoValidationError as error:
            _raise_drf(error)
        campaign = selectors.merchant_campaigns(merchant=self.merchant).get(pk=campaign.pk)
        return Response(CampaignOutput(campaign).data)

    @extend_schema(request=ProposeInput, responses={202: JobOutput})
    @action(detail=True, methods=["post"])
    def propose(self, request, **kwargs):
        """Queue a job that proposes a strategy; its result names the strategy."""
        campaign = self.get_object()
        data = self.ProposeInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = None
        if data.validated_data.get("model_version") is not None:
            version = self.scoped(ModelVersion).filter(pk=data.validated_data["model_version"])
            version = version.first()
            if version is None:
                raise serializers.ValidationError({"model_version": "No such model version."})
        try:
            job = strategy_propose(
                campaign=campaign,
                actor=request.user,
                budget=data.validated_data.get("budget"),
                version=version,
            )
        except DjangoValidationError as error:
            _raise_drf(error)
        job.refresh_from_db()
        return Response(JobOutput(job).data, status=status.HTTP_202_ACCEPTED)


# --- strategies ---------------------------------------------------------------------------------

_STRATEGY_FIELDS = [
    "id",
    "campaign",
    "campaign_name",
    "model_version",
    "model_version_number",
    "status",
    "applicable",
    "goal",
    "budget",
    "margin_rate",
    "average_order_value",
    "holdout_share",
    "exploration_share",
    "arms",
    "eligible_customers",
    "treated_customers",
    "holdout_customers",
    "exploration_customers",
    "expected_conversions",
    "expected_revenue",
    "expected_cost",
    "expected_profit",
    "expected_roi",
    "counts",
    "job",
    "created_by",
    "proposed_at",
    "applied_at",
    "applied_by",
    "rolled_back_at",
    "rolled_back_by",
]


class StrategyListOutput(serializers.ModelSerializer):
    campaign_name = serializers.CharField(source="campaign.name", read_only=True)
    applicable = serializers.SerializerMethodField(
        help_text="Whether it can be applied now: proposed (or rolled back) for the campaign's "
        "current settings."
    )
    model_version_number = serializers.IntegerField(source="model_version.number", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None)
    applied_by = serializers.CharField(source="applied_by.username", default=None)
    rolled_back_by = serializers.CharField(source="rolled_back_by.username", default=None)

    class Meta:
        model = Strategy
        fields = _STRATEGY_FIELDS

    def get_applicable(self, strategy: Strategy) -> bool:
        return strategy_is_applicable(strategy)


class StrategyOutput(StrategyListOutput):
    """A strategy with its breakdown per segment and its efficient frontier (layouts:
    campaigns/strategies.py)."""

    class Meta:
        model = Strategy
        fields = [*_STRATEGY_FIELDS, "segments", "frontier", "summary"]


class RealizedResultsOutput(serializers.Serializer):
    strategy = serializers.IntegerField()
    available = serializers.BooleanField(
        help_text="Whether outcomes have been measured for this strategy yet."
    )
    refreshed_at = serializers.DateTimeField(allow_null=True)
    orders = serializers.IntegerField(help_text="Orders counted (inside the window).")
    results = serializers.JSONField(
        allow_null=True,
        help_text="Realized against predicted, overall, per coupon and per segment, with 95% "
        "intervals and sample sizes (layout: campaigns/results.py).",
    )


class ApplyOutput(serializers.Serializer):
    strategy = StrategyListOutput()
    job = JobOutput(allow_null=True, help_text="The apply job to poll; null: applied already.")


@extend_schema(tags=["strategies"])
@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("campaign", int, required=False, description="Campaign id."),
            OpenApiParameter("status", enum=StrategyStatus.values, required=False),
        ]
    )
)
class StrategyApi(
    MerchantAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Proposed strategies with their expected numbers; managers apply and roll back."""

    model = Strategy
    serializer_class = StrategyOutput
    lookup_url_kwarg = "strategy_id"

    def get_serializer_class(self):
        return StrategyListOutput if self.action == "list" else StrategyOutput

    def get_queryset(self):
        queryset = selectors.merchant_strategies(merchant=self.merchant)
        campaign = self.request.query_params.get("campaign")
        if campaign:
            if not campaign.isdigit():
                raise serializers.ValidationError({"campaign": "Give a campaign id."})
            queryset = queryset.filter(campaign_id=int(campaign))
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in StrategyStatus.values:
                raise serializers.ValidationError({"status": "Unknown status."})
            queryset = queryset.filter(status=wanted)
        return queryset

    @extend_schema(
        request=None,
        responses={
            202: OpenApiResponse(ApplyOutput, description="Queued: poll the job."),
            200: OpenApiResponse(ApplyOutput, description="Applied already: nothing to do."),
        },
    )
    @action(detail=True, methods=["post"])
    def apply(self, request, **kwargs):
        """Create the assignments (a job). Applying twice creates nothing twice."""
        strategy = self.get_object()
        try:
            job = strategy_apply_enqueue(strategy=strategy, actor=request.user)
        except DjangoValidationError as error:
            _raise_drf(error)
        strategy = self.get_queryset().get(pk=strategy.pk)
        if job is not None:
            job.refresh_from_db()
        body = ApplyOutput({"strategy": strategy, "job": job}).data
        return Response(
            body, status=status.HTTP_200_OK if job is None else status.HTTP_202_ACCEPTED
        )

    @extend_schema(request=None, responses=RealizedResultsOutput)
    @action(detail=True, methods=["get"])
    def results(self, request, **kwargs):
        """What the applied strategy did, measured against its holdout (recomputed after each
        outcomes import); ``available`` is false until outcomes are measured."""
        strategy = self.get_object()
        result = strategy_results(strategy=strategy)
        body = {
            "strategy": strategy.pk,
            "available": result is not None,
            "refreshed_at": result.refreshed_at if result else None,
            "orders": result.orders if result else 0,
            "results": result.data if result else None,
        }
        return Response(RealizedResultsOutput(body).data)

    @extend_schema(request=None, responses=StrategyOutput)
    @action(detail=True, methods=["post"])
    def rollback(self, request, **kwargs):
        """Delete the applied strategy's assignments; only before the campaign starts."""
        try:
            strategy = strategy_rollback(strategy=self.get_object(), actor=request.user)
        except DjangoValidationError as error:
            _raise_drf(error)
        return Response(StrategyOutput(self.get_queryset().get(pk=strategy.pk)).data)


# --- assignments --------------------------------------------------------------------------------


class AssignmentOutput(serializers.ModelSerializer):
    customer_id = serializers.CharField(source="customer.external_id", read_only=True)
    arm = serializers.CharField(read_only=True)

    class Meta:
        model = Assignment
        fields = [
            "id",
            "campaign",
            "strategy",
            "customer_id",
            "kind",
            "arm",
            "code",
            "propensity",
            "assigned_at",
        ]


class AssignmentFilter(serializers.Serializer):
    campaign = serializers.IntegerField(required=False, help_text="Campaign id.")
    strategy = serializers.IntegerField(required=False, help_text="Strategy id.")
    customer = serializers.CharField(required=False, help_text="The shop's customer id.")
    code = serializers.CharField(required=False, help_text="A coupon code.")
    kind = serializers.ChoiceField(choices=AssignmentKind.choices, required=False)
    coupon_type = serializers.CharField(
        required=False, help_text="A coupon type code, or 'control' for no coupon."
    )


class AssignmentPagination(pagination.CursorPagination):
    """Stable pages over millions of rows: no counting, no deep offsets."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


def _filtered_assignments(view: MerchantAPIMixin, request):
    filters = AssignmentFilter(data=request.query_params)
    filters.is_valid(raise_exception=True)
    return selectors.merchant_assignments(merchant=view.merchant, **filters.validated_data)


@extend_schema(tags=["assignments"], parameters=[AssignmentFilter])
class AssignmentApi(MerchantAPIMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Coupon assignments of applied strategies: who gets which coupon code (or none, and why).
    Filter by campaign, strategy, customer (the shop's id), code, kind or coupon type."""

    model = Assignment
    serializer_class = AssignmentOutput
    pagination_class = AssignmentPagination

    def get_queryset(self):
        return _filtered_assignments(self, self.request)


class CSVRenderer(renderers.BaseRenderer):
    """Lets clients ask for ``Accept: text/csv``; errors (bad filters) still come as JSON text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return json.dumps(data).encode() if not isinstance(data, bytes) else data


@extend_schema(
    tags=["assignments"],
    parameters=[AssignmentFilter],
    responses={(200, "text/csv"): OpenApiTypes.STR},
)
class AssignmentExportApi(MerchantAPIMixin, APIView):
    """The same assignments as a streamed CSV file (UTF-8 with BOM; safe to open in a
    spreadsheet: cells that would run as formulas are quoted)."""

    model = Assignment
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]

    def get(self, request, **kwargs):
        queryset = _filtered_assignments(self, request)
        return csv_response(
            filename=f"assignments-{self.merchant.slug}.csv",
            header=EXPORT_HEADER,
            rows=assignment_export_rows(queryset),
        )
