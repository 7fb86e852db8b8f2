"""REST API v1. Merchant-scoped resources live under merchants/<merchant>/."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import ObtainAuthToken

from campaigns.api import MemberApi, MerchantApi, MyMerchantsApi
from campaigns.campaign_api import AssignmentApi, AssignmentExportApi, CampaignApi, StrategyApi
from campaigns.imports.api import BulkImportApi, ImportApi
from campaigns.tenancy import tenant_exempt
from modeling.api import JobApi, ModelVersionApi

app_name = "api"

M = "merchants/<slug:merchant>/"

urlpatterns = [
    path("auth/token/", tenant_exempt(ObtainAuthToken.as_view()), name="token"),
    path("schema/", tenant_exempt(SpectacularAPIView.as_view()), name="schema"),
    path(
        "docs/",
        tenant_exempt(SpectacularSwaggerView.as_view(url_name="api:schema")),
        name="docs",
    ),
    path("merchants/", MyMerchantsApi.as_view({"get": "list"}), name="merchant-list"),
    path(M, MerchantApi.as_view({"get": "retrieve", "patch": "partial_update"}), name="merchant"),
    path(M + "members/", MemberApi.as_view({"get": "list", "post": "create"}), name="member-list"),
    path(
        M + "members/<int:member_id>/",
        MemberApi.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="member-detail",
    ),
    path(M + "imports/", ImportApi.as_view({"get": "list", "post": "create"}), name="import-list"),
    path(
        M + "imports/<int:import_id>/",
        ImportApi.as_view({"get": "retrieve"}),
        name="import-detail",
    ),
    *[
        path(
            f"{M}{kind}/bulk/",
            BulkImportApi.as_view(kind=kind),
            name=f"{kind}-bulk",
        )
        for kind in ("customers", "events", "treatments", "outcomes")
    ],
    path(M + "models/", ModelVersionApi.as_view({"get": "list"}), name="model-list"),
    path(
        M + "models/<int:version_id>/",
        ModelVersionApi.as_view({"get": "retrieve"}),
        name="model-detail",
    ),
    path(
        M + "models/<int:version_id>/promote/",
        ModelVersionApi.as_view({"post": "promote"}),
        name="model-promote",
    ),
    path(
        M + "campaigns/",
        CampaignApi.as_view({"get": "list", "post": "create"}),
        name="campaign-list",
    ),
    path(
        M + "campaigns/<int:campaign_id>/",
        CampaignApi.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="campaign-detail",
    ),
    path(
        M + "campaigns/<int:campaign_id>/propose/",
        CampaignApi.as_view({"post": "propose"}),
        name="campaign-propose",
    ),
    path(M + "strategies/", StrategyApi.as_view({"get": "list"}), name="strategy-list"),
    path(
        M + "strategies/<int:strategy_id>/",
        StrategyApi.as_view({"get": "retrieve"}),
        name="strategy-detail",
    ),
    path(
        M + "strategies/<int:strategy_id>/apply/",
        StrategyApi.as_view({"post": "apply"}),
        name="strategy-apply",
    ),
    path(
        M + "strategies/<int:strategy_id>/results/",
        StrategyApi.as_view({"get": "results"}),
        name="strategy-results",
    ),
    path(
        M + "strategies/<int:strategy_id>/rollback/",
        StrategyApi.as_view({"post": "rollback"}),
        name="strategy-rollback",
    ),
    path(M + "assignments/", AssignmentApi.as_view({"get": "list"}), name="assignment-list"),
    path(
        M + "assignments/export/",
        AssignmentExportApi.as_view(),
        name="assignment-export",
    ),
    path(M + "jobs/", JobApi.as_view({"get": "list"}), name="job-list"),
    path(M + "jobs/<int:job_id>/", JobApi.as_view({"get": "retrieve"}), name="job-detail"),
    path(M + "jobs/<int:job_id>/cancel/", JobApi.as_view({"post": "cancel"}), name="job-cancel"),
]
