"""The Celery application. Configuration lives in Django settings under the CELERY_ prefix.

Queues: ``default`` (imports, proposals, housekeeping), ``scoring`` (chunks of customers to score)
and ``training`` (model training, served by GPU workers where there are any). Start a worker
serving all three with ``celery -A promo_portal worker -Q default,scoring,training``.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_portal.settings.local")

app = Celery("promo_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("scoring"), Queue("training"))
app.autodiscover_tasks()


@app.task(name="promo_portal.ping", ignore_result=False)
def ping() -> str:
    """A no-op round trip: for health checks and for measuring raw broker throughput."""
    return "pong"
