"""Job dispatch through a real Celery worker on Redis, beside raw Celery tasks, in one run.

Measures (1) raw Celery round trips of a trivial task through a 2-process worker, and (2) the
product's path: ``job_enqueue`` -> worker -> JobTask lifecycle (start, progress, finish) written
to the Job row. The ratio shows what the job bookkeeping costs per task.

Needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis); creates and drops its own database.
Issue 2 names no target for this stage; the figures are for reference (DESIGN.md quotes about 800
trivial tasks/s through one 2-process worker on a 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid

from _harness import Timer, celery_worker, median_of, setup_django, throwaway_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small size, under a minute")
    parser.add_argument("--tasks", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.tasks or (200 if args.quick else 2000)
    if not (
        os.environ.get("DATABASE_URL", "").startswith("postgres")
        and os.environ.get("CELERY_BROKER_URL")
    ):
        sys.exit("Set DATABASE_URL=postgres://... and CELERY_BROKER_URL=redis://... first.")

    setup_django()
    from celery import group

    from campaigns.models import Merchant
    from modeling.choices import JobKind, JobStatus
    from modeling.models import Job
    from modeling.services import job_enqueue
    from modeling.tasks import worker_check
    from promo_portal.celery import app

    with throwaway_database() as db_name, celery_worker(db_name, concurrency=2):
        merchant = Merchant.objects.create(name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}")
        ping = app.signature("promo_portal.ping")

        def raw() -> float:
            with Timer() as t:
                group(ping for _ in range(n)).apply_async().get(timeout=600)
            return n / t.seconds

        def jobs() -> float:
            with Timer() as t:
                created = [
                    job_enqueue(merchant=merchant, kind=JobKind.WORKER_CHECK, task=worker_check)
                    for _ in range(n)
                ]
                ids = [job.pk for job in created]
                for job in created:
                    app.AsyncResult(job.celery_task_id).get(timeout=600)
            assert Job.objects.filter(pk__in=ids, status=JobStatus.SUCCEEDED).count() == n
            return n / t.seconds

        raw_median, raw_runs = median_of(args.repeats, raw)
        job_median, job_runs = median_of(args.repeats, jobs)

    print(f"tasks per run: {n}; worker: 1 process group, concurrency 2 (prefork)")
    print(f"raw celery round trips: median {raw_median:,.0f} tasks/s, runs {_rounded(raw_runs)}")
    print(
        f"jobs (enqueue, worker, row): median {job_median:,.0f} jobs/s, runs {_rounded(job_runs)}"
    )
    print(f"job bookkeeping keeps {job_median / raw_median:.0%} of raw task throughput")


def _rounded(values: list[float]) -> list[int]:
    return [round(v) for v in values]


if __name__ == "__main__":
    main()
