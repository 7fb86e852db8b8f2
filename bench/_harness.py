"""Shared pieces of the benchmarks: a throwaway database, timing, and the TARGET line.

Every benchmark runs as ``.venv/bin/python bench/NAME.py`` (``--quick`` for a small size) and ends
with one line per target, as DESIGN.md specifies:
``TARGET <metric> <measured> <unit> <op> <goal> MET|MISSED``.
"""

from __future__ import annotations

import contextlib
import operator
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def setup_django(settings_module: str = "promo_portal.settings.test") -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django

    django.setup()


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """Create, migrate and finally drop a test database (test_<name>), like the test runner."""
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


@contextlib.contextmanager
def celery_worker(
    db_name: str, *, queues: str = "default,scoring,training", concurrency: int = 2
) -> Iterator[subprocess.Popen]:
    """A real ``celery worker`` (prefork, ``concurrency`` processes) on the broker of
    CELERY_BROKER_URL, writing to the database ``db_name``; the tasks this process sends go to
    it while the block runs (not eagerly), and so do the tasks the worker sends itself."""
    from django.conf import settings
    from django.db import connection

    from promo_portal.celery import app
    from promo_portal.env import database_url

    name = f"bench-{uuid.uuid4().hex[:6]}@{os.uname().nodename}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url({**connection.settings_dict, "NAME": db_name}),
        "DJANGO_SETTINGS_MODULE": "promo_portal.settings.test",
        "PROMO_TEST_WORKER": "1",
    }
    app.control.purge()  # nothing left over from an earlier run may reach this worker
    eager = app.conf.task_always_eager, settings.CELERY_TASK_ALWAYS_EAGER
    with tempfile.TemporaryFile(mode="w+") as log:  # its banner and warnings, shown on failure
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "promo_portal", "worker",
             "-Q", queues, "-c", str(concurrency), "-n", name,
             "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while not any(name in r for r in app.control.ping(destination=[name], timeout=1.0)):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    sys.exit(f"The benchmark's Celery worker did not start:\n{log.read()[-4000:]}")
            app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER = False
            yield process
        finally:
            app.conf.task_always_eager, settings.CELERY_TASK_ALWAYS_EAGER = eager
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def worker_pool_usage(worker: subprocess.Popen) -> tuple[float, float]:
    """(CPU seconds, largest peak RSS in MiB) of a running worker's pool processes (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    cpu, peak = 0.0, 0.0
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) / 1024)
    return cpu, peak


def median_of(repeats: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    """Run ``measure`` several times (machines are noisy) and return the median and all runs."""
    runs = [measure() for _ in range(repeats)]
    return statistics.median(runs), runs


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def own_peak_rss_mib() -> float:
    """This process's peak RSS in MiB. Not ru_maxrss alone: a child started by subprocess
    (vfork + exec) inherits its parent's high-water mark there; VmHWM (Linux) belongs to its
    own address space."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def target(metric: str, measured: float, unit: str, op: str, goal: float) -> bool:
    met = _OPS[op](measured, goal)
    shown = f"{measured:.3g}" if abs(measured) < 100 else f"{measured:.0f}"
    print(f"TARGET {metric} {shown} {unit} {op} {goal:g} {'MET' if met else 'MISSED'}")
    return met


# --- A loaded merchant on a database that may be kept (bench/web.py; usable by any bench) -------


@contextlib.contextmanager
def bench_database(*, keep: bool = False, reuse: bool = False) -> Iterator[str]:
    """Like :func:`throwaway_database`, but ``reuse`` opens the database a kept run left (and
    migrates it; a missing one is created) and ``keep`` leaves it in place at the end."""
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    # serialize=False: a kept database holds millions of rows, which the test runner would
    # otherwise serialize into memory (for serialized_rollback) before anything runs.
    name = connection.creation.create_test_db(
        verbosity=0, autoclobber=True, serialize=False, keepdb=reuse
    )
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0, keepdb=keep)
        teardown_test_environment()


@dataclass
class LoadedMerchant:
    """What :func:`simulated_merchant_load` imported, and how long it took."""

    customers: int
    events: int
    treatments: int
    seconds: float
    messages: list[tuple[str, float]]  # the import service's messages, seconds since the last


def simulated_merchant_load(*, merchant, customers: int, seed: int) -> LoadedMerchant:
    """A simulated merchant through the product's import path (``merchant_load_simulation``:
    simulate, write CSVs, import customers, events and treatments as an upload would be)."""
    from campaigns.models import Event
    from campaigns.simulated import merchant_load_simulation

    messages: list[tuple[str, float]] = []
    last = [time.perf_counter()]

    def report(message: str) -> None:
        now = time.perf_counter()
        messages.append((message.strip(), now - last[0]))
        last[0] = now

    with Timer() as load:
        simulation = merchant_load_simulation(
            merchant=merchant, customers=customers, seed=seed, report=report
        )
    return LoadedMerchant(
        customers=customers,
        events=Event.objects.filter(merchant=merchant).count(),
        treatments=len(simulation.treatments["arm"]),
        seconds=load.seconds,
        messages=messages,
    )


def model_version_train_first(
    *, merchant, customers: int, epochs: int = 1, pretrain_epochs: int = 1
):
    """A ready model version made by the product's training job (``model_version_train`` ->
    ``train_version``: training, held-out evaluation beside every baseline, artifact, curves)
    on the merchant's first ``customers`` customers only, with short training settings, so a
    large merchant gets a real version in about a minute. Tasks must run eagerly (test
    settings). The version is scored by the caller (``model_version_score``)."""
    from django.db import transaction

    from campaigns.models import Customer
    from modeling import training_service

    ids = Customer.objects.filter(merchant=merchant).order_by("id").values_list("id", flat=True)
    first_id = ids.first()
    last_id = ids[min(customers, ids.count()) - 1]
    original = training_service.merchant_data_load

    def first_customers(**kwargs):
        return original(**{**kwargs, "customer_range": (first_id, last_id)})

    training_service.merchant_data_load = first_customers
    try:
        # The job runs on commit: the outer block lets the settings be shortened first.
        with transaction.atomic():
            version = training_service.model_version_train(
                merchant=merchant, actor=None, epochs=epochs
            )
            hyperparameters = {
                **version.hyperparameters,
                "pretrain_epochs": pretrain_epochs,
                "patience": epochs + 1,
            }
            type(version).objects.filter(pk=version.pk).update(hyperparameters=hyperparameters)
    finally:
        training_service.merchant_data_load = original
    version.refresh_from_db()
    return version


def peak_rss_mib_of(pid: int) -> float | None:
    """Another process's peak RSS (VmHWM) in MiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (Linux)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return children
