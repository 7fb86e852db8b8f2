"""Test settings: the local defaults, made fast and isolated.

DATABASE_URL and CELERY_BROKER_URL are honoured, so the same suite runs on SQLite with nothing
set and against PostgreSQL and Redis in CI.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .local import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

_TMP = Path(tempfile.mkdtemp(prefix="promo-portal-test-"))
MEDIA_ROOT = _TMP / "media"
UPLOAD_ROOT = _TMP / "uploads"
MODEL_ARTIFACT_ROOT = _TMP / "models"
