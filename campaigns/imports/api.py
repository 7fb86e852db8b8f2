"""REST doors of the import service: bulk JSON/CSV bodies (synchronous) and file uploads (jobs)."""

from __future__ import annotations

import json

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, parsers, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.choices import ImportKind, ImportSource, ImportStatus
from campaigns.imports.reading import InputError
from campaigns.imports.service import (
    import_create_from_file,
    import_create_from_upload,
    import_run,
    import_save_body,
    import_start,
)
from campaigns.models import DataImport
from campaigns.tenancy import MerchantAPIMixin


class CSVBodyParser(parsers.BaseParser):
    """A CSV request body, passed on as bytes (the import service detects the encoding)."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        return stream.read()


class ImportOutput(serializers.ModelSerializer):
    job = serializers.PrimaryKeyRelatedField(read_only=True)
    errors_truncated = serializers.SerializerMethodField()

    class Meta:
        model = DataImport
        fields = [
            "id",
            "kind",
            "source",
            "status",
            "filename",
            "encoding",
            "column_mapping",
            "create_missing_customers",
            "rows_total",
            "rows_inserted",
            "rows_updated",
            "rows_unchanged",
            "customers_created",
            "error_count",
            "errors",
            "errors_truncated",
            "message",
            "job",
            "created_at",
            "finished_at",
        ]

    def get_errors_truncated(self, data_import: DataImport) -> bool:
        return data_import.error_count > len(data_import.errors)


_BULK_EXAMPLE = OpenApiExample(
    "Two events as JSON",
    value=[
        {
            "customer_id": "C0001",
            "timestamp": "2026-01-05T10:00:00+08:00",
            "event_type": "view",
            "item_id": "SKU-1",
            "category": "tea",
            "price": 59.0,
            "quantity": None,
        },
        {"customer_id": "C0001", "timestamp": "2026-01-05T10:02:00+08:00", "event_type": "search"},
    ],
    request_only=True,
)


class BulkImportApi(MerchantAPIMixin, APIView):
    """Import rows synchronously from a JSON array of objects or a CSV body (text/csv).

    All or nothing: 201 with the counts, or 400 with every problem (line, column, value, reason)
    and nothing written. Sending the same rows again adds nothing. For files of millions of rows
    use the imports endpoint, which runs as a job.
    """

    model = DataImport
    kind: str = ""
    parser_classes = [parsers.JSONParser, CSVBodyParser]

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT, "text/csv": OpenApiTypes.STR},
        responses={201: ImportOutput, 400: ImportOutput},
        examples=[_BULK_EXAMPLE],
        parameters=[],
    )
    def post(self, request, **kwargs):
        create = request.query_params.get("create_customers", "").lower() in ("1", "true", "yes")
        records = None
        if isinstance(request.data, bytes | bytearray):
            path = import_save_body(
                merchant=self.merchant, body=bytes(request.data), name="body.csv"
            )
            data_import = import_create_from_file(
                merchant=self.merchant,
                kind=self.kind,
                path=path,
                filename="request body (CSV)",
                actor=request.user,
                source=ImportSource.API,
            )
        else:
            records = request.data
            data_import = DataImport.objects.create(
                merchant=self.merchant,
                kind=self.kind,
                source=ImportSource.API,
                filename="request body (JSON)",
                created_by=request.user,
            )
        if data_import.status != ImportStatus.REJECTED:
            data_import.create_missing_customers = create
            data_import.save(update_fields=["create_missing_customers"])
            data_import = import_run(data_import=data_import, records=records)
        code = status.HTTP_201_CREATED if data_import.status == ImportStatus.SUCCEEDED else 400
        return Response(ImportOutput(data_import).data, status=code)


class ImportApi(
    MerchantAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Imports of this merchant; upload a CSV file to import it as a job (202)."""

    model = DataImport
    serializer_class = ImportOutput
    lookup_url_kwarg = "import_id"
    parser_classes = [parsers.MultiPartParser]

    class UploadInput(serializers.Serializer):
        kind = serializers.ChoiceField(choices=ImportKind.choices)
        file = serializers.FileField()
        create_missing_customers = serializers.BooleanField(default=False)
        column_mapping = serializers.JSONField(
            required=False, help_text="Source column -> target column; '' leaves a column out."
        )

    def get_queryset(self):
        return self.scoped(DataImport).select_related("job")

    @extend_schema(
        request={"multipart/form-data": UploadInput},
        responses={202: ImportOutput, 400: ImportOutput},
    )
    def create(self, request, **kwargs):
        data = self.UploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            data_import = import_create_from_upload(
                merchant=self.merchant,
                kind=data.validated_data["kind"],
                upload=data.validated_data["file"],
                actor=request.user,
                source=ImportSource.API,
            )
        except InputError as error:
            raise serializers.ValidationError({"file": [str(error)]}) from None
        if data_import.status == ImportStatus.REJECTED:
            return Response(ImportOutput(data_import).data, status=400)
        mapping = data.validated_data.get("column_mapping")
        if mapping is not None:
            if isinstance(mapping, str):
                mapping = json.loads(mapping)
            data_import.column_mapping = {**data_import.column_mapping, **mapping}
        data_import.create_missing_customers = data.validated_data["create_missing_customers"]
        data_import.save(update_fields=["column_mapping", "create_missing_customers"])
        data_import = import_start(data_import=data_import, actor=request.user)
        response = Response(ImportOutput(data_import).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = reverse(
            "api:import-detail",
            kwargs={"merchant": self.merchant.slug, "import_id": data_import.pk},
        )
        return response
