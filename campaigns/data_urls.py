"""Data pages, mounted under /m/<merchant>/data/."""

from __future__ import annotations

from django.urls import path

from . import data_views

app_name = "data"

urlpatterns = [
    path("", data_views.DataOverviewView.as_view(), name="overview"),
    path("import/", data_views.DataUploadView.as_view(), name="upload"),
    path("imports/<int:import_id>/", data_views.DataImportView.as_view(), name="import"),
    path(
        "imports/<int:import_id>/start/",
        data_views.DataImportStartView.as_view(),
        name="import-start",
    ),
    path(
        "imports/<int:import_id>/result/",
        data_views.DataImportResultView.as_view(),
        name="import-result",
    ),
    path(
        "imports/<int:import_id>/errors.csv",
        data_views.DataImportErrorsView.as_view(),
        name="import-errors",
    ),
]
