"""WSGI entry point (gunicorn promo_portal.wsgi). Production sets DJANGO_SETTINGS_MODULE."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_portal.settings.local")
application = get_wsgi_application()
