"""A real Celery worker, in its own process, consuming Redis and writing to the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from promo_portal.celery import app
from promo_portal.env import database_url

ROOT = Path(__file__).resolve().parents[2]
WORKER_START_TIMEOUT_S = 90


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """Start ``celery worker`` on all three queues against the test database; stop it after."""
    app.control.purge()  # nothing left over from an earlier run may reach this worker
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "promo_portal.settings.test",
        "DATABASE_URL": database_url(connection.settings_dict),
        "PYTHONUNBUFFERED": "1",
        "PROMO_TEST_WORKER": "1",  # tasks the worker sends go through the broker too
    }
    command = [
        sys.executable, "-m", "celery", "-A", "promo_portal", "worker",
        "-Q", "default,scoring,training", "-n", name, "-c", "2",
        "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _await_worker(process, name.replace("%h", os.uname().nodename), log_path)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _await_worker(process: subprocess.Popen, hostname: str, log_path: Path) -> None:
    # Wait for the worker's own answer to a ping: the event that it is consuming.
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The Celery worker exited:\n{log_path.read_text()}")
        replies = app.control.ping(destination=[hostname], timeout=1.0)
        if any(hostname in reply for reply in replies):
            return
    raise RuntimeError(f"The Celery worker did not answer in time:\n{log_path.read_text()}")


@pytest.fixture
def celery_worker(celery_worker_process, settings):
    """Send tasks to the real worker (not eagerly) for the duration of one test."""
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        yield celery_worker_process
    finally:
        app.conf.task_always_eager = True
