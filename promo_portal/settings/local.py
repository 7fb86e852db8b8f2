"""The embedded default: runs with nothing configured (SQLite, files under var/, eager Celery)."""

from __future__ import annotations

import secrets

from promo_portal.env import env_bool

from .base import *  # noqa: F403
from .base import VAR_DIR

DEBUG = env_bool("DEBUG", default=True)
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file and the demo's files live here


def _local_secret_key() -> str:
    # A per-checkout random key kept under var/, so no secret is ever committed or shared.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


if SECRET_KEY is None:  # noqa: F405
    SECRET_KEY = _local_secret_key()

# runserver serves static files itself; the manifest is only built by collectstatic.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Serve static files straight from the finders (node_modules, the plotly package) in the demo.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
