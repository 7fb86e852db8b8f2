"""Dashboard speed: every merchant page's server time under 20 concurrent users (issue 6.10).

- a database of its own (test_bench_web on the PostgreSQL of DATABASE_URL) holding a simulated
  merchant of 1,000,000 customers (20,000 with ``--quick``) loaded through the product's import
  path (``merchant_load_simulation``), a model version made by the product's training job on the
  merchant's first 20,000 customers (1 epoch, 1 pretraining epoch: its held-out evaluation and
  baselines fill the model page), scored for every customer by the scoring job, a campaign whose
  first proposal is applied (one assignment per eligible customer) and whose second one is left
  proposed, and one propose job shown as running (the page a user watches while a proposal runs);
  the 20 users are members (owners, managers and viewers in turn); then ANALYZE, as
  autovacuum would after such an import in production (it may be off on a development server);
- gunicorn serving ``promo_portal.wsgi`` with the production settings (DEBUG off, persistent
  database connections, WhiteNoise's manifest of collected static files) on a free port of
  127.0.0.1, with 3 sync workers, as docker-compose.yml runs it: on 2 cores shared with
  PostgreSQL and the load generator, a third process covers the time a worker waits for the
  database, and more would only queue on the same 2 cores (``--workers``, ``--threads``);
- locust, as a library in one child process (one gevent loop: one core at most), with 20 users
  who sign in through the login form (CSRF token from the form, the session cookie) and then
  request every merchant page in turn with a think time of 0.5 to 1.5 s between pages (about
  20 pages/s in all: far busier than 20 people reading dashboards, short of saturating the
  workers, whose own queue would then be measured rather than the pages; ``--think``); requests
  carry ``X-Forwarded-Proto: https`` as the TLS-terminating proxy of production would, so the
  production settings' secure cookies and HTTPS checks apply unchanged;
- each user's first pass over the pages (cold workers, template compilation) is not measured;
  then ``--duration`` seconds (120, about 90 requests of each page; 20 with ``--quick``) are;
- server time per page from gunicorn's access log (``%(D)s``: from the request read to the
  response written, in the worker; no product code involved), p50/p95/max and counts, beside
  locust's client-side p95 (which adds queueing for a free worker and the client's own time).

Every page must answer 200 (no redirect to the login, no error): any other answer fails the run.
The pages are those of campaigns/urls.py, campaigns/data_urls.py, campaigns/campaign_urls.py and
modeling/urls.py that a member reads with GET, with the fragments that pages poll (job progress,
training progress, import results), and the user's API token page; not the CSV downloads, the
API or forms' POSTs.

    .venv/bin/python bench/web.py [--quick] [--customers N] [--duration S] [--users N]
        [--workers N] [--threads N] [--think MIN MAX] [--keep] [--reuse]

``--keep`` leaves the database and its files (under var/bench-web/) for a later ``--reuse`` run
or for a look with ``manage.py shell``; without it both are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import (
    ROOT,
    Timer,
    bench_database,
    child_pids,
    model_version_train_first,
    own_peak_rss_mib,
    peak_rss_mib_of,
    setup_django,
    simulated_merchant_load,
    target,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
BENCH_DATABASE = "test_bench_web"  # not test_postgres: a test run may be using that one
KEPT_FILES = ROOT / "var" / "bench-web"
SLUG = "bench-web"
SEED = 17
TRAIN_CUSTOMERS = 20_000
PASSWORD = "bench-web-" + "password"  # the bench's own throwaway users
GOAL_MS = 200
ACCESS_LOG_FORMAT = "%(U)s %(s)s %(D)s %(p)s"  # path, status, microseconds, worker pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 customers, 20 s")
    parser.add_argument("--customers", type=int, help="default 1,000,000 (20,000 with --quick)")
    parser.add_argument("--duration", type=float, help="measured seconds (120; 20 with --quick)")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (3)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (1: sync)")
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 1.5), metavar=("MIN", "MAX"))
    parser.add_argument("--keep", action="store_true", help="keep the database and its files")
    parser.add_argument("--reuse", action="store_true", help="use what a --keep run left")
    parser.add_argument("--child-locust", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_locust:
        return _locust_child(Path(args.child_locust))

    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it happens in a log file
    customers = args.customers or (20_000 if args.quick else 1_000_000)
    duration = args.duration or (20.0 if args.quick else 120.0)
    started = time.perf_counter()
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    persistent = args.keep or args.reuse
    work = KEPT_FILES if persistent else Path(tempfile.mkdtemp(prefix="bench-web-"))
    if not args.reuse:  # a new database: none of a kept run's files belong to it
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    os.environ["PROMO_TEST_TMP"] = str(work)  # settings.test: media, uploads, models under it
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # not every task's INFO line
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    setup_django()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit(f"web: needs PostgreSQL; set DATABASE_URL (default {DEFAULT_DATABASE_URL}).")
    connection.settings_dict["TEST"]["NAME"] = BENCH_DATABASE
    print(
        f"web: {customers:,} customers, {args.users} users, {duration:.0f} s measured; database "
        f"{BENCH_DATABASE} on {connection.settings_dict['HOST'] or 'localhost'}:"
        f"{connection.settings_dict['PORT']}; files in {work}; {os.cpu_count()} cores"
    )
    failed = False
    try:
        with bench_database(keep=args.keep, reuse=args.reuse) as db_name:
            site = _merchant_site(customers=customers, users=args.users)
            _analyze()
            _print_database(db_name)
            failed = _serve_and_measure(args, site, db_name, work, duration)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    if failed:
        sys.exit(1)


# --- the merchant ---------------------------------------------------------------------------------


def _merchant_site(*, customers: int, users: int) -> dict:
    """The bench merchant (built unless a kept run left it), its users and its page URLs."""
    from campaigns.models import Customer, Merchant

    merchant = Merchant.objects.filter(slug=SLUG).first()
    if merchant is not None:
        have = Customer.objects.filter(merchant=merchant).count()
        print(f"reusing the kept merchant {SLUG}: {have:,} customers")
        if have != customers:
            print(f"  (asked for {customers:,}: drop {BENCH_DATABASE} or run without --reuse)")
    else:
        merchant = _build_merchant(customers=customers)
    names = [f"bench-user-{i:02d}" for i in range(users)]
    _ensure_users(merchant, names)
    return {"slug": merchant.slug, "users": names, "pages": _page_urls(merchant)}


def _ensure_users(merchant, names: list[str]) -> None:
    """Members with a password the production settings' hasher reads (the bench process runs
    with the test settings' fast hasher, which production does not list)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from campaigns.choices import Role
    from campaigns.models import Membership

    roles = [Role.OWNER, Role.MANAGER, Role.VIEWER]
    hasher = PBKDF2PasswordHasher()
    encoded = hasher.encode(PASSWORD, hasher.salt())
    user_model = get_user_model()
    for index, name in enumerate(names):
        user, _ = user_model.objects.get_or_create(
            username=name, defaults={"email": f"{name}@bench.test"}
        )
        user_model.objects.filter(pk=user.pk).update(password=encoded)
        Membership.objects.get_or_create(
            user=user, merchant=merchant, defaults={"role": roles[index % len(roles)]}
        )


def _build_merchant(*, customers: int):
    from datetime import timedelta
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from campaigns.assignments import strategy_apply_enqueue
    from campaigns.models import Assignment, CouponType, Strategy
    from campaigns.services import campaign_create, merchant_create
    from campaigns.strategies import strategy_propose
    from modeling.choices import JobKind, JobStatus
    from modeling.models import Job
    from modeling.scoring_service import model_version_score

    owner = get_user_model().objects.create_user(
        username="bench-user-00", email="bench-user-00@bench.test"
    )
    merchant = merchant_create(
        name="Bench web", slug=SLUG, currency="CNY", timezone="Asia/Shanghai", owner=owner
    )
    loaded = simulated_merchant_load(merchant=merchant, customers=customers, seed=SEED)
    print(
        f"load (through the import path): {loaded.seconds:.0f} s; {loaded.customers:,} "
        f"customers, {loaded.events:,} events, {loaded.treatments:,} treatment rows"
    )
    for message, seconds in loaded.messages:
        print(f"  {message} ({seconds:.0f} s)")

    with Timer() as trained:
        version = model_version_train_first(
            merchant=merchant, customers=min(TRAIN_CUSTOMERS, customers)
        )
    _check(version.status == "ready", f"training: version {version.status}")
    print(
        f"model v{version.number}: the training job on the first "
        f"{min(TRAIN_CUSTOMERS, customers):,} customers (1 epoch, 1 pretraining epoch) "
        f"{trained.seconds:.0f} s"
    )
    with Timer() as scored:
        job = _finished(model_version_score(version=version, actor=None))
    print(f"scoring job: {scored.seconds:.0f} s for {customers:,} customers ({job.message})")

    start = timezone.now() + timedelta(days=1)
    codes = list(CouponType.objects.filter(merchant=merchant).values_list("code", flat=True))
    budget = Decimal(customers) * Decimal("0.5")
    campaign = campaign_create(
        merchant=merchant,
        actor=owner,
        coupon_types=codes,
        name="Bench spring",
        budget=budget,
        starts_at=start,
        ends_at=start + timedelta(days=14),
    )
    with Timer() as proposed:
        job = _finished(strategy_propose(campaign=campaign, actor=owner))
    applied = Strategy.objects.get(pk=job.result["strategy_id"])
    with Timer() as apply_time:
        _finished(strategy_apply_enqueue(strategy=applied, actor=owner))
    assignments = Assignment.objects.filter(strategy=applied).count()
    job = _finished(strategy_propose(campaign=campaign, actor=owner, budget=budget * 2))
    print(
        f"campaign {campaign.name}: proposal {proposed.seconds:.0f} s, applied "
        f"({assignments:,} assignments) in {apply_time.seconds:.0f} s, a second proposal "
        f"(strategy #{job.result['strategy_id']}) left proposed"
    )
    # The page a user watches while a proposal runs (jobs run eagerly here: none stays running).
    Job.objects.create(
        merchant=merchant,
        kind=JobKind.PROPOSE,
        status=JobStatus.RUNNING,
        progress=40,
        message="Allocating coupons under the budget",
        params={"campaign_id": campaign.pk, "version_id": version.pk, "budget": None},
        created_by=owner,
        started_at=timezone.now(),
    )
    return merchant


def _finished(job):
    from modeling.choices import JobStatus

    _check(job is not None, "no job was queued")
    job.refresh_from_db()
    _check(job.status == JobStatus.SUCCEEDED, f"job #{job.pk} {job.kind}: {job.status} {job.error}")
    return job


def _check(ok: bool, message: str) -> None:
    if not ok:
        sys.exit(f"web: {message}")


def _page_urls(merchant) -> list[tuple[str, str, bool]]:
    """(name, path, polled by htmx) of every page a member reads."""
    from django.urls import reverse

    from campaigns.choices import ImportKind, StrategyStatus
    from campaigns.models import Campaign, CouponType, DataImport, Strategy
    from modeling.choices import JobKind, JobStatus
    from modeling.models import Job
    from modeling.selectors import merchant_champion

    m = {"merchant": merchant.slug}
    campaign = Campaign.objects.filter(merchant=merchant).order_by("id").first()
    applied = Strategy.objects.filter(campaign=campaign, status=StrategyStatus.APPLIED).first()
    proposed = (
        Strategy.objects.filter(campaign=campaign, status=StrategyStatus.PROPOSED)
        .order_by("-id")
        .first()
    )
    running = Job.objects.filter(merchant=merchant, status=JobStatus.RUNNING).first()
    version = merchant_champion(merchant=merchant)
    events_import = DataImport.objects.filter(merchant=merchant, kind=ImportKind.EVENTS).first()
    coupon = CouponType.objects.filter(merchant=merchant).order_by("code").first()
    score_job = Job.objects.filter(merchant=merchant, kind=JobKind.SCORE).first()
    found = (campaign, applied, proposed, running, version, events_import, coupon, score_job)
    _check(
        all(item is not None for item in found),
        "the kept merchant lacks part of the bench's data; run without --reuse",
    )
    pages = [
        ("home", reverse("campaigns:home", kwargs=m), False),
        ("members", reverse("campaigns:members", kwargs=m), False),
        ("settings", reverse("campaigns:settings", kwargs=m), False),
        ("data", reverse("data:overview", kwargs=m), False),
        ("data_upload", reverse("data:upload", kwargs=m), False),
        ("data_import", reverse("data:import", kwargs={**m, "import_id": events_import.pk}), False),
        (
            "data_import_result",
            reverse("data:import-result", kwargs={**m, "import_id": events_import.pk}),
            True,
        ),
        ("coupons", reverse("promo:coupons", kwargs=m), False),
        ("coupon_new", reverse("promo:coupon-create", kwargs=m), False),
        (
            "coupon_edit",
            reverse("promo:coupon-edit", kwargs={**m, "coupon_type_id": coupon.pk}),
            False,
        ),
        ("campaigns", reverse("promo:campaigns", kwargs=m), False),
        ("campaign_new", reverse("promo:campaign-create", kwargs=m), False),
        ("campaign", reverse("promo:campaign", kwargs={**m, "campaign_id": campaign.pk}), False),
        (
            "campaign_edit",
            reverse("promo:campaign-edit", kwargs={**m, "campaign_id": campaign.pk}),
            False,
        ),
        (
            "campaign_job",
            reverse(
                "promo:campaign-job", kwargs={**m, "campaign_id": campaign.pk, "job_id": running.pk}
            ),
            False,
        ),
        (
            "strategy_applied",
            reverse("promo:strategy", kwargs={**m, "strategy_id": applied.pk}),
            False,
        ),
        (
            "strategy_proposed",
            reverse("promo:strategy", kwargs={**m, "strategy_id": proposed.pk}),
            False,
        ),
        ("jobs", reverse("modeling:jobs", kwargs=m), False),
        ("job", reverse("modeling:job", kwargs={**m, "job_id": score_job.pk}), False),
        (
            "job_progress",
            reverse("modeling:job-progress", kwargs={**m, "job_id": running.pk}),
            True,
        ),
        ("models", reverse("modeling:models", kwargs=m), False),
        ("model", reverse("modeling:model", kwargs={**m, "version_id": version.pk}), False),
        (
            "model_training",
            reverse("modeling:model-training", kwargs={**m, "version_id": version.pk}),
            True,
        ),
        ("segments", reverse("modeling:segments", kwargs=m), False),
        ("api_token", reverse("api_token"), False),
    ]
    return pages


def _analyze() -> None:
    """Planner statistics for the loaded tables, as autovacuum gathers them after a large
    import in production (the imports do not run ANALYZE; this server may run no autovacuum)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0]
        with Timer() as analyzed:
            cursor.execute("ANALYZE")
    print(f"ANALYZE: {analyzed.seconds:.1f} s (autovacuum is {autovacuum} on this server)")


def _print_database(db_name: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        total = cursor.fetchone()[0]
        cursor.execute(
            """SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND n.nspname = 'public'
            ORDER BY 2 DESC LIMIT 4"""
        )
        largest = cursor.fetchall()
    shown = ", ".join(f"{name} {size / 2**20:,.0f} MiB" for name, size in largest)
    print(f"database {db_name}: {total / 2**20:,.0f} MiB ({shown})")
    print(
        f"peak memory of the bench process (building, loading, scoring): "
        f"{own_peak_rss_mib():,.0f} MiB"
    )


# --- serving and measuring ------------------------------------------------------------------------


def _serve_and_measure(args, site: dict, db_name: str, work: Path, duration: float) -> bool:
    from django.conf import settings
    from django.db import connection

    from promo_portal.env import database_url

    connection.close()
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "promo_portal.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url({**connection.settings_dict, "NAME": db_name}),
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",  # read pages enqueue nothing
        "STATIC_ROOT": str(work / "static"),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "UPLOAD_ROOT": str(settings.UPLOAD_ROOT),
        "MODEL_ARTIFACT_ROOT": str(settings.MODEL_ARTIFACT_ROOT),
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PROMO_TEST_TMP", None)
    with Timer() as collected:
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
    print(f"collectstatic (WhiteNoise's compressed manifest): {collected.seconds:.0f} s")

    access_log = work / "access.log"
    error_log = work / "gunicorn.log"
    access_log.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "gunicorn", "promo_portal.wsgi",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.workers),
        "--threads", str(args.threads),
        "--access-logfile", str(access_log),
        "--access-logformat", ACCESS_LOG_FORMAT,
        "--error-logfile", str(error_log),
        "--backlog", "256",
    ]  # fmt: skip
    kind = "sync" if args.threads == 1 else f"gthread x{args.threads}"
    print(f"gunicorn: {args.workers} {kind} workers, production settings, port {port}")
    with error_log.open("ab") as server_output:  # TensorFlow's start-up lines, warnings
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=server_output,
            stderr=server_output,
            start_new_session=True,
        )
    try:
        _wait_until_up(port, server, error_log)
        workers = child_pids(server.pid)
        config = {
            "host": f"http://127.0.0.1:{port}",
            "users": site["users"],
            "password": PASSWORD,
            "pages": site["pages"],
            "duration": duration,
            "think": list(args.think),
            "access_log": str(access_log),
        }
        config_path = work / "locust.json"
        config_path.write_text(json.dumps(config))
        print(
            f"locust: 1 process (a gevent loop, at most one core), {len(site['users'])} users "
            f"signed in through the login form, {len(site['pages'])} pages each in turn, think "
            f"time {args.think[0]:g}-{args.think[1]:g} s; first pass unmeasured, then "
            f"{duration:.0f} s"
        )
        out = subprocess.run(
            [sys.executable, __file__, "--child-locust", str(config_path)],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            print(out.stdout[-3000:], out.stderr[-6000:], sep="\n")
            sys.exit("web: the locust child failed")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        peaks = [peak_rss_mib_of(pid) for pid in workers]
        tensorflow = [_has_tensorflow(pid) for pid in workers]
        master_peak = peak_rss_mib_of(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    return _report(result, site, access_log, peaks, master_peak, tensorflow)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(port: int, server: subprocess.Popen, error_log: Path) -> None:
    deadline = time.monotonic() + 60
    health = f"http://127.0.0.1:{port}/healthz/"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"web: gunicorn exited:\n{error_log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(health, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"web: gunicorn did not answer in 60 s:\n{error_log.read_text()[-4000:]}")


def _has_tensorflow(pid: int) -> bool:
    try:
        return "libtensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _report(result: dict, site: dict, access_log: Path, peaks, master_peak, tensorflow) -> bool:
    names = {path: name for name, path, _ in site["pages"]}
    order = [name for name, _, _ in site["pages"]]
    server_ms: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_worker: dict[str, int] = defaultdict(int)
    with access_log.open("rb") as handle:
        handle.seek(result["log_start"])
        text = handle.read(result["log_end"] - result["log_start"]).decode()
    for line in text.splitlines():
        match = re.fullmatch(r"(\S+) (\d+) (\d+) <(\d+)>", line.strip())
        if not match or match.group(1) not in names:
            continue
        name = names[match.group(1)]
        server_ms[name].append(int(match.group(3)) / 1000)
        statuses[name][match.group(2)] += 1
        by_worker[match.group(4)] += 1

    seconds = result["measured_seconds"]
    total = sum(len(v) for v in server_ms.values())
    print(
        f"\nmeasured {seconds:.0f} s: {total:,} page requests ({total / seconds:.1f}/s) over "
        f"{len(by_worker)} workers ({'/'.join(str(n) for n in sorted(by_worker.values()))}); "
        f"machine CPU busy {result['cpu_busy']:.0%} of {os.cpu_count()} cores, of which locust "
        f"{result['locust_cpu'] / seconds:.0%} of one core"
    )
    print(f"{'page':<20} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}   {'client p95':>10}")
    rows = []
    for name in order:
        times = server_ms.get(name, [])
        if not times:
            rows.append((name, None))
            print(f"{name:<20} {0:>5}   (no measured request)")
            continue
        p50 = statistics.median(times)
        p95 = _percentile(times, 95)
        client = result["client_p95"].get(name)
        print(
            f"{name:<20} {len(times):>5} {p50:>8.1f} {p95:>8.1f} {max(times):>8.1f}   "
            f"{client if client is not None else '-':>10}"
        )
        rows.append((name, p95))
    print(
        "(server time: gunicorn's %(D)s per request; client p95: locust's, with queueing for a "
        "free worker; locust rounds it)"
    )
    known = [p for p in peaks if p is not None]
    if known:
        print(
            f"peak memory (VmHWM) of the gunicorn workers: {', '.join(f'{p:,.0f}' for p in known)}"
            f" MiB; master {master_peak or 0:,.0f} MiB; TensorFlow loaded in "
            f"{sum(tensorflow)} of {len(tensorflow)} workers"
        )

    failures = result["failures"]
    bad_status = {name: dict(codes) for name, codes in statuses.items() if set(codes) != {"200"}}
    missing = [name for name, p95 in rows if p95 is None]
    failed = bool(failures or bad_status or missing)
    if failed:
        print("\nFAILED: every page must answer 200")
        for failure in failures[:20]:
            print(f"  {failure}")
        for name, codes in bad_status.items():
            print(f"  {name}: {codes}")
        for name in missing:
            print(f"  {name}: no measured request")

    print()
    for name, p95 in rows:
        if p95 is not None:
            target(f"web_p95_ms_{name}", p95, "ms", "<=", GOAL_MS)
    measured = [(p95, name) for name, p95 in rows if p95 is not None]
    if measured:
        worst, worst_name = max(measured)
        print(f"(worst: {worst_name})")
        target("web_p95_ms_worst", worst, "ms", "<=", GOAL_MS)
    return failed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]  # nearest rank


# --- the load generator (a child process: locust's gevent patches must not reach Django) ---------


def _locust_child(config_path: Path) -> None:
    import gevent
    import gevent.event
    from locust import HttpUser, between, task
    from locust.env import Environment

    config = json.loads(config_path.read_text())
    pages = [(name, path, polled) for name, path, polled in config["pages"]]
    accounts = list(config["users"])
    ready = {"count": 0}
    go = gevent.event.Event()
    failures: list[str] = []
    host = config["host"]
    proxied = {"X-Forwarded-Proto": "https"}  # as production's TLS proxy sends

    class PageUser(HttpUser):
        wait_time = between(*config["think"])

        def on_start(self) -> None:
            self.username = accounts.pop(0)
            self.offset = len(accounts)  # users start at different pages
            self._login()
            for index in range(len(pages)):  # warm-up pass (not measured); checks every page
                self._page(index)
            ready["count"] += 1
            go.wait()
            self.turn = self.offset

        def _cookies(self) -> None:
            # Production's cookies are Secure; behind the proxy the connection is HTTPS.
            for cookie in self.client.cookies:
                cookie.secure = False

        def _login(self) -> None:
            login = self.client.get("/accounts/login/", headers=proxied, name="login")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
            self._cookies()
            response = self.client.post(
                "/accounts/login/",
                data={
                    "username": self.username,
                    "password": config["password"],
                    "csrfmiddlewaretoken": token.group(1) if token else "",
                },
                headers={**proxied, "Origin": host.replace("http://", "https://")},
                allow_redirects=False,
                name="login",
            )
            self._cookies()
            if response.status_code != 302 or "sessionid" not in self.client.cookies:
                failures.append(f"login {self.username}: {response.status_code}")
                raise RuntimeError(f"login failed for {self.username}")

        def _page(self, index: int) -> None:
            name, path, polled = pages[index % len(pages)]
            headers = dict(proxied)
            if polled:
                headers["HX-Request"] = "true"
            self._cookies()
            with self.client.get(
                path, headers=headers, name=name, allow_redirects=False, catch_response=True
            ) as response:
                if response.status_code != 200:
                    where = response.headers.get("Location", "")
                    failures.append(
                        f"{name} {path} as {self.username}: {response.status_code} {where}"
                    )
                    response.failure(f"status {response.status_code}")

        @task
        def next_page(self) -> None:
            self._page(self.turn)
            self.turn += 1

    environment = Environment(user_classes=[PageUser], host=host)
    runner = environment.create_local_runner()
    runner.start(len(accounts), spawn_rate=len(accounts))
    deadline = time.monotonic() + 600
    total_users = len(accounts)
    while ready["count"] < total_users:
        if failures or time.monotonic() > deadline:
            runner.quit()
            print(json.dumps({"error": failures or ["warm-up did not finish"]}))
            sys.exit(1)
        gevent.sleep(0.2)
    environment.stats.reset_all()
    log_start = os.path.getsize(config["access_log"])
    cpu_start, own_start = _cpu_times(), _own_cpu()
    started = time.monotonic()
    go.set()
    gevent.sleep(config["duration"])
    log_end = os.path.getsize(config["access_log"])
    measured = time.monotonic() - started
    cpu_end, own_end = _cpu_times(), _own_cpu()
    runner.quit()
    busy = 1 - (cpu_end[1] - cpu_start[1]) / max(cpu_end[0] - cpu_start[0], 1)
    client_p95 = {
        name: environment.stats.get(name, "GET").get_response_time_percentile(0.95)
        for name, _path, _polled in pages
    }
    print(
        json.dumps(
            {
                "log_start": log_start,
                "log_end": log_end,
                "measured_seconds": measured,
                "client_p95": client_p95,
                "failures": failures,
                "cpu_busy": busy,
                "locust_cpu": own_end - own_start,
            }
        )
    )


def _cpu_times() -> tuple[int, int]:
    """(all jiffies, idle + iowait jiffies) of the machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


if __name__ == "__main__":
    main()
