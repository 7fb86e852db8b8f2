"""Promo Portal project package: settings, URLs, the Celery app, WSGI/ASGI entry points."""

from __future__ import annotations

import os

# TensorFlow's C++ start-up notices (CPU features, oneDNN) are noise in every command's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .celery import app as celery_app

__all__ = ["celery_app"]
