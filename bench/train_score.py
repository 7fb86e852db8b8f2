"""Training and scoring throughput: the product's pipeline beside raw Keras on the same network.

- product training: what the training job does — ``prepare_training_data`` (split, vocabulary
  and normalizer on the training customers, ``build_sequences``, static features, targets) then
  ``train_uplift_model``'s ``model.fit`` with validation, early-stopping and timing callbacks;
  sequences/s = training rows / (median epoch training time + preparation time / epochs);
- raw training: ``model.fit`` of the same compiled network on the same in-memory arrays, no
  callbacks, no validation; its encoder frozen where the product froze it after pretraining
  (the product then trains the heads alone: the raw fit does the same work);
  sequences/s = training rows / median epoch time;
- in-memory scoring: ``scoring.predict`` from events (sequences + static features + network)
  beside raw ``model.predict`` on prepared arrays, customers/s (median of repeats);
- end-to-end scoring on PostgreSQL (issue 4, point 7): a throwaway database, a simulated
  merchant of 1M customers (50k with ``--quick``) loaded through the product's import path
  (``merchant_load_simulation``; timed apart, not part of the figure), a model version trained
  on the first 20k of its customers (10k with ``--quick``) as ``merchant_data_load`` reads them
  (1 epoch, 1 pretraining epoch: a real artifact with the merchant's arms), then the product's
  scoring job (``model_version_score``: the Celery chord of ``score_chunk`` tasks) twice:
  (a) run eagerly in one child process of its own, so that its peak memory (VmHWM) is the
  scoring's alone, with a per-stage split measured by timing the service's own calls; (b) as
  deployed, sent through Redis to a real Celery worker on the `scoring` queue with one prefork
  process per core (docker-compose's worker), its chunks spread over the processes; the TARGET
  is (b). customers/s = customers / (start of the job to all chunks written: read customers and
  events from PostgreSQL, build sequences, predict, write the Parquet chunks); the result is
  checked with ``model_version_scores`` (one row per customer).

Machines are noisy and some epochs stall on small ones: every figure is a median of several
epochs or repeats, and the product/raw ratio is measured in the same run. The end-to-end scoring
is one run of the job (20 chunks at 1M with the service's 50k-customer chunks).

    .venv/bin/python bench/train_score.py [--quick] [--customers N] [--epochs E] [--jit]
        [--scoring-only] [--scoring-customers N] [--train-customers N] [--chunk-size N]

The database part needs PostgreSQL and Redis: DATABASE_URL defaults to
postgres://postgres@127.0.0.1:5432/postgres, CELERY_BROKER_URL to redis://127.0.0.1:6379/13;
the bench creates and drops its own database (test_bench_train_score; drop it by hand if a crash
leaves it behind).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np

from bench._harness import (
    ROOT,
    Timer,
    celery_worker,
    median_of,
    own_peak_rss_mib,
    setup_django,
    target,
    throwaway_database,
    worker_pool_usage,
)
from bench.quality import merchant_arrays
from modeling import simulation
from modeling.network import fit_targets, model_input_names
from modeling.scoring import predict
from modeling.training import (
    TrainingConfig,
    build_model_for,
    freeze_encoder,
    prepare_training_data,
    train_uplift_model,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
# A Redis database of the bench's own, so that no other worker takes its tasks.
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/13"
# Not test_<name>: a test run on the same server may be using test_postgres at the same time.
BENCH_DATABASE = "test_bench_train_score"
SCORING_SEED = 11


class EpochTimes(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--customers", type=int, help="customers of the training part")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--jit", action="store_true", help="jit_compile=True (XLA)")
    parser.add_argument(
        "--scoring-only", action="store_true", help="only the end-to-end scoring on PostgreSQL"
    )
    parser.add_argument(
        "--scoring-customers",
        type=int,
        help="customers of the end-to-end scoring (default 1,000,000; 50,000 with --quick)",
    )
    parser.add_argument(
        "--train-customers",
        type=int,
        help="the merchant's customers the scoring model is trained on "
        "(default 20,000; 10,000 with --quick)",
    )
    parser.add_argument(
        "--chunk-size", type=int, help="customers per scoring chunk (default: the service's)"
    )
    parser.add_argument("--child-score-version", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_score_version:
        return _score_child(args.child_score_version, args.chunk_size)

    started = time.perf_counter()
    targets: list[tuple] = []
    if not args.scoring_only:
        targets += training_part(args)
    targets += scoring_e2e_part(args)
    print(f"total {time.perf_counter() - started:.0f} s")
    for line in targets:
        target(*line)


def training_part(args) -> list[tuple]:
    n_customers = args.customers or (6_000 if args.quick else 40_000)
    epochs = args.epochs or (3 if args.quick else 8)
    config = TrainingConfig(
        epochs=epochs, patience=epochs + 1, jit_compile=True if args.jit else "auto", seed=1
    )
    merchant = simulation.simulate_merchant(n_customers, seed=1)
    events, treatments = merchant_arrays(merchant)
    arms = merchant.truth.arms
    print(
        f"train_score: {n_customers} customers, {merchant.n_events} events, "
        f"{len(treatments)} treatment rows; preset {config.preset}, batch {config.batch_size}, "
        f"max_len {config.max_len}, {epochs} epochs, jit_compile={config.jit_compile}; "
        f"backend {keras.backend.backend()}"
    )

    # Product: the training job's data step and fit.
    prep_seconds, prep_runs = median_of(
        3, lambda: _timed(lambda: prepare_training_data(events, treatments, config, arms=arms))
    )
    data = prepare_training_data(events, treatments, config, arms=arms)
    n_train = int(data["train"].sum())
    started = time.perf_counter()
    bundle = train_uplift_model(events, treatments, config, arms=arms)
    product_total = time.perf_counter() - started
    product_epoch = statistics.median(h["train_seconds"] for h in bundle.history)
    product_rate = n_train / (product_epoch + prep_seconds / epochs)
    print(
        f"product: data step {prep_seconds:.2f} s (runs {_fmt(prep_runs)}; "
        f"{merchant.n_events / prep_seconds:,.0f} events/s), epochs (training part) "
        f"{_fmt(h['train_seconds'] for h in bundle.history)} s, whole call {product_total:.1f} s "
        f"-> {product_rate:,.0f} sequences/s"
    )

    # Raw: the same network on the same arrays.
    keras.utils.set_random_seed(1)
    model = build_model_for(data["preprocessing"], len(arms), config, data["revenue_head"])
    frozen = bool(bundle.pretraining.get("frozen"))
    if frozen:  # the product trained the heads on a pretrained, frozen encoder: the same here
        freeze_encoder(model, len(arms), config)
    rows = np.flatnonzero(data["train"])
    x_all = data["inputs"].take(rows).as_keras()
    x = {k: x_all[k] for k in model_input_names(model)}
    y = fit_targets(model, {k: v[rows] for k, v in data["y"].items()})
    clock = EpochTimes()
    model.fit(x, y, epochs=epochs, batch_size=config.batch_size, callbacks=[clock], verbose=0)
    raw_epoch = statistics.median(clock.seconds)
    raw_rate = n_train / raw_epoch
    encoder = "frozen, as the product froze it after pretraining" if frozen else "trained"
    print(
        f"raw model.fit (encoder {encoder}): epochs {_fmt(clock.seconds)} s "
        f"-> {raw_rate:,.0f} sequences/s"
    )

    # Scoring.
    predict(bundle, events.subset(np.arange(min(2000, n_customers))))  # warm up
    score_seconds, score_runs = median_of(3, lambda: _timed(lambda: predict(bundle, events)))
    inputs = data["inputs"]
    xs = {k: v for k, v in inputs.as_keras().items() if k in model_input_names(bundle.model)}
    raw_predict, raw_runs = median_of(
        3, lambda: _timed(lambda: bundle.model.predict(xs, batch_size=4096, verbose=0))
    )
    score_rate = n_customers / score_seconds
    raw_predict_rate = len(inputs) / raw_predict
    print(
        f"scoring: predict() from events {_fmt(score_runs)} s -> {score_rate:,.0f} customers/s; "
        f"raw model.predict {_fmt(raw_runs)} s -> {raw_predict_rate:,.0f} customers/s "
        "(loading from the database not included)"
    )
    print(f"peak memory of the training and in-memory scoring (max RSS): {peak_rss_mib():,.0f} MiB")

    return [
        ("train_product_vs_raw", product_rate / raw_rate, "x", ">=", 0.75),
        ("train_sequences_per_s", product_rate, "sequences/s", ">=", 5000),
        ("predict_customers_per_s", score_rate, "customers/s", ">=", 20000),
    ]


class StageClock:
    """Seconds spent inside named functions, by wrapping them where the service looks them up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.runs: dict[str, list[float]] = defaultdict(list)
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str, stage: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - start
                self.seconds[stage] += seconds
                self.runs[stage].append(seconds)

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def scoring_e2e_part(args) -> list[tuple]:
    """Load a simulated merchant into PostgreSQL, train a version, score it with the job."""
    n = args.scoring_customers or (50_000 if args.quick else 1_000_000)
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("CELERY_BROKER_URL", DEFAULT_BROKER_URL)
    work = Path(tempfile.mkdtemp(prefix="bench-train-score-"))
    # settings.test keeps uploads, simulations and artifacts here; the scoring child shares it.
    os.environ["PROMO_TEST_TMP"] = str(work)
    setup_django()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit(
            "train_score: the end-to-end scoring needs PostgreSQL; set "
            f"DATABASE_URL=postgres://... (unset, it defaults to {DEFAULT_DATABASE_URL})."
        )
    connection.settings_dict["TEST"]["NAME"] = BENCH_DATABASE
    print(
        f"\nend-to-end scoring on PostgreSQL: {n:,} customers, database {BENCH_DATABASE} on "
        f"{connection.settings_dict['HOST'] or 'localhost'}:{connection.settings_dict['PORT']}"
    )
    try:
        with throwaway_database() as db_name:
            return _scoring_e2e(args, n, db_name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _scoring_e2e(args, n: int, db_name: str) -> list[tuple]:
    from django.conf import settings
    from django.db import connection

    import campaigns.simulated as simulated
    from campaigns.models import Customer, Event, Merchant
    from modeling.artifacts import save_trained_model
    from modeling.dataset import merchant_data_load
    from modeling.models import ModelVersion
    from modeling.scoring_service import SCORE_CHUNK_SIZE
    from modeling.services import model_version_finish, model_version_next_number
    from modeling.training_service import experiment_arrays
    from promo_portal.env import database_url

    # 1. The merchant, through the product's import path (not part of the scoring figure).
    merchant = Merchant.objects.create(name="Bench scoring", slug="bench-scoring")
    clock = StageClock()
    clock.wrap(simulated, "simulate_merchant", "simulate")
    clock.wrap(simulated, "write_csvs", "write CSVs")
    imports: list[tuple[str, float]] = []
    last = [time.perf_counter()]

    def report(message: str) -> None:
        now = time.perf_counter()
        imports.append((message.strip(), now - last[0]))
        last[0] = now

    try:
        with Timer() as load:
            sim = simulated.merchant_load_simulation(
                merchant=merchant, customers=n, seed=SCORING_SEED, report=report
            )
    finally:
        clock.restore()
    n_events = Event.objects.filter(merchant=merchant).count()
    n_treatments = len(sim.treatments["arm"])
    del sim
    shutil.rmtree(simulated.simulation_dir(merchant), ignore_errors=True)  # the CSVs
    import_seconds = load.seconds - clock.seconds["simulate"] - clock.seconds["write CSVs"]
    print(
        f"load (not part of the scoring figure): {load.seconds:.1f} s = simulate "
        f"{clock.seconds['simulate']:.1f} s + write CSVs {clock.seconds['write CSVs']:.1f} s + "
        f"import {import_seconds:.1f} s; {n:,} customers, {n_events:,} events, "
        f"{n_treatments:,} treatment rows"
    )
    for message, seconds in imports:
        print(f"  {message} ({seconds:.1f} s)")
    print(f"  peak memory of the loading process so far (max RSS): {peak_rss_mib():,.0f} MiB")

    # 2. A model version: the ML core trained on the merchant's first customers as the
    #    product's loader reads them; a real artifact with the merchant's arms.
    k = min(args.train_customers or (10_000 if args.quick else 20_000), n)
    ids = Customer.objects.filter(merchant=merchant).order_by("id").values_list("id", flat=True)
    first_id, last_id = ids[0], ids[k - 1]
    config = TrainingConfig(epochs=1, pretrain_epochs=1, patience=2, seed=1)
    with Timer() as trained:
        data = merchant_data_load(merchant=merchant, customer_range=(first_id, last_id))
        events, treatments = experiment_arrays(data)
        bundle = train_uplift_model(events, treatments, config, arms=data.arms)
        version = ModelVersion.objects.create(
            merchant=merchant,
            number=model_version_next_number(merchant=merchant),
            preset=config.preset,
            hyperparameters=config.to_dict(),
        )
        path = Path(settings.MODEL_ARTIFACT_ROOT) / merchant.slug / f"v{version.number}"
        save_trained_model(bundle, path)
        version = model_version_finish(
            version=version,
            arms=list(bundle.arms),
            artifact_path=str(path),
            data_counts={
                "customers": data.n_customers,
                "events": int(events.customer_index.size),
                "treatments": len(treatments),
            },
        )
    print(
        f"model v{version.number}: train_uplift_model on the first {k:,} customers "
        f"(merchant_data_load + experiment_arrays: {int(events.customer_index.size):,} events, "
        f"{len(treatments):,} treatment rows), preset {config.preset}, {config.epochs} epoch, "
        f"{config.pretrain_epochs} pretraining epoch, saved with save_trained_model, "
        f"status {version.status}; {trained.seconds:.1f} s; arms {', '.join(version.arms)}"
    )
    del data, events, treatments, bundle

    # 3. The scoring job, in a child process (its peak memory is the scoring's alone).
    connection.close()
    env = {
        **os.environ,
        "DATABASE_URL": database_url({**connection.settings_dict, "NAME": db_name}),
    }
    command = [sys.executable, __file__, "--child-score-version", str(version.pk)]
    if args.chunk_size:
        command += ["--chunk-size", str(args.chunk_size)]
    out = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"train_score: the scoring child failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])

    seconds = result["seconds"]
    rate = result["customers"] / seconds
    stages = result["stages"]
    chunk_total = sum(result["chunk_seconds"])
    known = ("read", "build sequences", "network", "segments", "write Parquet")
    split = {name: stages.get(name, 0.0) for name in known}
    inside = sum(split.values())
    # A chunk goes in parts, each read while the one before is predicted: its stages overlap.
    split["other in chunks"] = max(chunk_total - inside, 0.0)
    split["job overhead"] = seconds - chunk_total
    overhead = ", ".join(
        f"{name} {stages[name]:.1f} s" for name in ("chunk ranges", "as_of") if name in stages
    )
    chunk_size = result["chunk_size"] or SCORE_CHUNK_SIZE
    print(
        f"scoring job (model_version_score, eager chord of score_chunk): {seconds:.1f} s for "
        f"{result['customers']:,} customers -> {rate:,.0f} customers/s; chunk size "
        f"{chunk_size:,}, {result['chunks']} chunks"
    )
    print("  chunks: " + _fmt(result["chunk_seconds"]) + " s (the first loads the artifact)")
    runs = result["stage_runs"]
    if len(runs.get("read", [])) > 1:
        network = [p - b for p, b in zip(runs["predict"], runs["build sequences"], strict=True)]
        print(
            f"  median part ({len(runs['read'])} parts): read "
            f"{statistics.median(runs['read']):.2f} s, build sequences "
            f"{statistics.median(runs['build sequences']):.2f} s, network "
            f"{statistics.median(network):.2f} s"
        )
    print(
        "  stages: "
        + ", ".join(f"{name} {s:.1f} s ({s / seconds:.0%})" for name, s in split.items())
    )
    print(
        "  (read = merchant_data_load: customers, events, treatments by COPY; build sequences = "
        "sequences.transform; network = the rest of scoring.predict; segments = "
        "lifecycle_from_events; other in chunks = event arrays, ScoreChunk row ...; "
        f"job overhead = chunk ranges, as_of, progress, chord callback: {overhead})"
    )
    print(
        f"  each chunk goes in parts, the next read while the network predicts the one before: "
        f"{inside:.1f} s inside the stages over {chunk_total:.1f} s of chunks' wall time"
    )
    print(
        f"  CPU time of the scoring process {result['cpu_seconds']:.1f} s over {seconds:.1f} s "
        f"wall on {os.cpu_count()} cores (PostgreSQL's own CPU time is not in it)"
    )
    print(
        f"  peak memory of the scoring process (its peak RSS right after the job: a fresh "
        f"child process with Django and TensorFlow loaded): {result['peak_mib']:,.0f} MiB"
    )
    print(
        f"  checked: job {result['status']}, model_version_scores -> {result['rows']:,} rows, "
        f"one per customer: {result['one_per_customer']}"
    )
    if not result["one_per_customer"] or result["status"] != "succeeded":
        sys.exit("train_score: the scoring job did not score every customer once.")

    # 4. The same job as deployed: a Celery worker on the `scoring` queue with one process per
    #    core (docker-compose's worker), the chord's chunks spread over its processes.
    deployed = _scoring_through_worker(version, db_name, result["customers"], args.chunk_size)
    if result["customers"] != 1_000_000:
        print(
            f"  (the end-to-end target is judged at 1,000,000 customers; this run scored "
            f"{result['customers']:,})"
        )
    return [("score_e2e_customers_per_s", deployed, "customers/s", ">=", 15_000)]


def _scoring_through_worker(version, db_name: str, customers: int, chunk_size: int | None):
    """The scoring job sent to a real worker (``-Q default,scoring``, prefork, one process per
    core); customers/s from sending the job to its chord's callback having run."""
    from modeling.choices import JobStatus
    from modeling.models import Job
    from modeling.scoring_service import model_version_score, model_version_scores
    from promo_portal.celery import app

    processes = os.cpu_count() or 1
    with celery_worker(db_name, queues="default,scoring", concurrency=processes) as worker:
        with Timer() as job_time:
            job = model_version_score(version=version, actor=None, chunk_size=chunk_size)
            deferred = app.AsyncResult(job.celery_task_id).get(timeout=3600)
            app.AsyncResult(deferred["finish_task_id"]).get(timeout=3600)
        cpu, peak = worker_pool_usage(worker)
    job = Job.objects.get(pk=job.pk)
    scored = np.unique(model_version_scores(version=version).customer_ids).size
    rate = customers / job_time.seconds
    print(
        f"the same job through a Celery worker (-Q default,scoring, prefork, concurrency "
        f"{processes} = the cores, as docker-compose runs it; Redis broker): "
        f"{job_time.seconds:.1f} s for {customers:,} customers -> {rate:,.0f} customers/s; "
        f"{deferred['chunks']} chunks, each process loads the artifact on its first"
    )
    print(
        f"  CPU time of the worker's processes {cpu:.1f} s over {job_time.seconds:.1f} s wall; "
        f"largest peak RSS of one process {peak:,.0f} MiB; job {job.status}, "
        f"{scored:,} customers scored"
    )
    if job.status != JobStatus.SUCCEEDED or scored != customers:
        sys.exit("train_score: the worker's scoring job did not score every customer once.")
    return rate


def _score_child(version_id: int, chunk_size: int | None) -> None:
    """Runs in a child process: the product's scoring job for one version; prints JSON."""
    setup_django()
    import pyarrow.parquet as pq
    from django.conf import settings

    from campaigns.models import Customer
    from modeling import scoring as core_scoring
    from modeling import scoring_service
    from modeling.models import ModelVersion, ScoreChunk

    assert settings.CELERY_TASK_ALWAYS_EAGER, "the bench runs the chord in-process"
    version = ModelVersion.objects.get(pk=version_id)
    clock = StageClock()
    clock.wrap(scoring_service, "score_chunk", "chunk")
    clock.wrap(scoring_service, "merchant_data_load", "read")
    clock.wrap(core_scoring, "predict", "predict")  # scoring_service imports it per call
    clock.wrap(core_scoring, "transform", "build sequences")
    if hasattr(scoring_service, "lifecycle_from_events"):
        clock.wrap(scoring_service, "lifecycle_from_events", "segments")
    clock.wrap(pq, "write_table", "write Parquet")
    clock.wrap(scoring_service, "score_chunk_ranges", "chunk ranges")
    clock.wrap(scoring_service, "scoring_as_of", "as_of")
    cpu_before = _cpu_seconds()
    try:
        with Timer() as job_time:
            job = scoring_service.model_version_score(
                version=version, actor=None, chunk_size=chunk_size
            )
    finally:
        clock.restore()
    cpu = _cpu_seconds() - cpu_before
    peak = own_peak_rss_mib()
    job.refresh_from_db()
    scores = scoring_service.model_version_scores(version=version)
    customer_ids = np.sort(
        np.fromiter(
            Customer.objects.filter(merchant=version.merchant).values_list("id", flat=True),
            dtype=np.int64,
        )
    )
    stages = dict(clock.seconds)
    stages["network"] = stages.pop("predict", 0.0) - stages.get("build sequences", 0.0)
    print(
        json.dumps(
            {
                "seconds": job_time.seconds,
                "customers": int(customer_ids.size),
                "chunk_size": job.params.get("chunk_size"),
                "chunks": ScoreChunk.objects.filter(version=version).count(),
                "chunk_seconds": clock.runs["chunk"],
                "stages": stages,
                "stage_runs": dict(clock.runs),
                "cpu_seconds": cpu,
                "peak_mib": peak,
                "status": job.status,
                "rows": int(scores.customer_ids.size),
                "one_per_customer": bool(
                    np.array_equal(np.sort(scores.customer_ids), customer_ids)
                ),
            }
        )
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _fmt(values) -> str:
    return "/".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
