"""REST API for jobs and model versions (/api/v1/merchants/{merchant}/jobs|models/...)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from campaigns.tenancy import MerchantAPIMixin

from . import selectors, services
from .models import Job, ModelVersion


class JobOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "progress",
            "message",
            "error",
            "params",
            "result",
            "celery_task_id",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]


@extend_schema(tags=["jobs"])
class JobApi(
    MerchantAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Long-running jobs of the merchant, newest first; poll one for its progress."""

    model = Job
    serializer_class = JobOutput
    lookup_url_kwarg = "job_id"

    def get_queryset(self):
        queryset = selectors.merchant_jobs(merchant=self.merchant)
        status = self.request.query_params.get("status")
        if status:
            queryset = queryset.filter(status=status)
        kind = self.request.query_params.get("kind")
        if kind:
            queryset = queryset.filter(kind=kind)
        return queryset

    @extend_schema(request=None, responses=JobOutput)
    @action(detail=True, methods=["post"])
    def cancel(self, request, **kwargs):
        job = self.get_object()
        services.job_cancel(job=job, actor=request.user)
        job.refresh_from_db()
        return Response(JobOutput(job).data)


class ModelVersionOutput(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "number",
            "status",
            "preset",
            "is_champion",
            "arms",
            "hyperparameters",
            "data_counts",
            "training_curves",
            "evaluation",
            "error",
            "job",
            "created_at",
            "trained_at",
        ]


@extend_schema(tags=["models"])
class ModelVersionApi(
    MerchantAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The merchant's model registry; managers promote a ready version to champion."""

    model = ModelVersion
    serializer_class = ModelVersionOutput
    lookup_url_kwarg = "version_id"

    def get_queryset(self):
        return selectors.merchant_model_versions(merchant=self.merchant)

    @extend_schema(request=None, responses=ModelVersionOutput)
    @action(detail=True, methods=["post"])
    def promote(self, request, **kwargs):
        try:
            version = services.model_version_promote(version=self.get_object(), actor=request.user)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"detail": error.messages}) from None
        return Response(ModelVersionOutput(version).data)
