"""The Celery application. Configuration lives in Django settings under the CELERY_ prefix.

Queues: ``default`` (imports, proposals, housekeeping), ``scoring`` (chunks of customers to score)
and ``training`` (model training, served by GPU workers where there are any). Start a worker
serving all three with ``celery -A promo_portal worker -Q default,scoring,training``.
"""

from __future__ import annotations

import importlib
import os

from celery import Celery
from celery.signals import worker_init
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_portal.settings.local")

app = Celery("promo_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("scoring"), Queue("training"))
app.autodiscover_tasks()

# The queues whose tasks run the network.
MODEL_QUEUES = frozenset({"scoring", "training"})


@worker_init.connect
def preload_keras(sender, **kwargs) -> None:
    """A worker serving a model queue imports Keras (and TensorFlow) once, in its main process
    before it starts its pool, so that every pool process starts with it loaded (and its pages
    shared) instead of importing it on its first task: about 6 s of CPU per process on a 2-core
    machine. Only the import: TensorFlow's runtime (its threads) starts in each pool process,
    on its first model, as it must after a fork."""
    if MODEL_QUEUES & set(sender.app.amqp.queues.consume_from):
        importlib.import_module("keras")


@app.task(name="promo_portal.ping", ignore_result=False)
def ping() -> str:
    """A no-op round trip: for health checks and for measuring raw broker throughput."""
    return "pong"
