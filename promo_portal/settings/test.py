"""Test settings: the local defaults, made fast and isolated.

DATABASE_URL and CELERY_BROKER_URL are honoured, so the same suite runs on SQLite with nothing
set and against PostgreSQL and Redis in CI.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .local import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# One scratch folder per test run, shared with the Celery worker the integration suite starts.
_TMP = Path(os.environ.get("PROMO_TEST_TMP") or tempfile.mkdtemp(prefix="promo-portal-test-"))
os.environ["PROMO_TEST_TMP"] = str(_TMP)
MEDIA_ROOT = _TMP / "media"
UPLOAD_ROOT = _TMP / "uploads"
IMPORT_SPOOL_ROOT = UPLOAD_ROOT / ".spool"
MODEL_ARTIFACT_ROOT = _TMP / "models"
# One network per model: the tests of jobs, registry and pages train many small models, and each
# member costs most of its graph's tracing time again (a 600-customer merchant: 28 s with one
# member, 52 s with five). The members have their own tests (test_ml_network.py).
MODEL_MEMBERS = 1

# Unit tests run tasks in-process even when a broker is configured; the integration suite's
# worker fixture turns this off while a real worker consumes the queues. The worker itself runs
# with PROMO_TEST_WORKER=1: the tasks it sends (a scoring job's chord of chunks) go through the
# broker to its processes, as in production, rather than running inside the task that sent them.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("PROMO_TEST_WORKER") != "1"
