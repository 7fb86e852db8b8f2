"""Job, model and segment pages, mounted under /m/<merchant>/."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "modeling"

urlpatterns = [
    path("jobs/", views.JobListView.as_view(), name="jobs"),
    path("jobs/<int:job_id>/", views.JobDetailView.as_view(), name="job"),
    path("jobs/<int:job_id>/progress/", views.JobProgressView.as_view(), name="job-progress"),
    path("jobs/<int:job_id>/cancel/", views.JobCancelView.as_view(), name="job-cancel"),
    path("models/", views.ModelListView.as_view(), name="models"),
    path("models/train/", views.ModelTrainView.as_view(), name="model-train"),
    path("models/retraining/", views.RetrainingScheduleView.as_view(), name="retraining"),
    path("models/<int:version_id>/", views.ModelDetailView.as_view(), name="model"),
    path(
        "models/<int:version_id>/training/",
        views.ModelTrainingProgressView.as_view(),
        name="model-training",
    ),
    path("models/<int:version_id>/score/", views.ModelScoreView.as_view(), name="model-score"),
    path(
        "models/<int:version_id>/promote/",
        views.ModelPromoteView.as_view(),
        name="model-promote",
    ),
    path("segments/", views.SegmentsView.as_view(), name="segments"),
]
