"""Scoring every customer of a merchant with a model version, in chunks that run in parallel.

``model_version_score`` queues a job; its task splits the merchant's customers into chunks by
id and hands them to a Celery chord on the `scoring` queue: each chunk loads its customers'
data, predicts with the version's artifact and writes one Parquet file atomically (a chunk run
twice replaces its own file: nothing is written twice): per customer its id, its lifecycle
segment (``modeling.segments``) and, per arm, P(convert) and the expected order value. The
chord's callback marks the job and the version scored. The optimizer reads all chunks back in
one pass (``model_version_scores``).
"""

from __future__ import annotations

import functools
import itertools
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import Customer
from modeling.choices import JobKind, JobStatus, ModelStatus
from modeling.dataset import merchant_data_load, merchant_latest_event_time
from modeling.models import Job, ModelVersion, ScoreChunk
from modeling.segments import lifecycle_from_events
from modeling.services import job_enqueue, job_succeed

if TYPE_CHECKING:
    from modeling.scoring import Predictions

# Customers per chunk. On the 2-core machine a chunk of 50k costs about 2-3 s (read ~1.5M
# events, build sequences, predict); smaller chunks spread better across workers.
SCORE_CHUNK_SIZE = 50_000
# Parts of a chunk: while the network predicts one, the next is read from the database (the
# read waits mostly on PostgreSQL, the network runs in TensorFlow's own threads).
SCORE_CHUNK_PARTS = 5


class ScoringError(Exception):
    pass


@transaction.atomic
def model_version_score(*, version: ModelVersion, actor, chunk_size: int | None = None) -> Job:
    from modeling.tasks import score_model

    if version.status != ModelStatus.READY:
        raise ScoringError(_("Only a ready model can score customers."))
    return job_enqueue(
        merchant=version.merchant,
        kind=JobKind.SCORE,
        task=score_model,
        created_by=actor,
        params={"version_id": version.pk, "chunk_size": chunk_size or SCORE_CHUNK_SIZE},
    )


def score_chunk_ranges(*, version: ModelVersion, size: int | None = None) -> list[tuple[int, int]]:
    """(first id, last id) of consecutive chunks of the merchant's customers."""
    size = size or SCORE_CHUNK_SIZE
    ids = np.fromiter(
        Customer.objects.filter(merchant=version.merchant)
        .order_by("id")
        .values_list("id", flat=True)
        .iterator(chunk_size=100_000),
        dtype=np.int64,
    )
    return [(int(ids[i]), int(ids[min(i + size, ids.size) - 1])) for i in range(0, ids.size, size)]


@functools.lru_cache(maxsize=4)
def _bundle(path: str):
    from modeling.artifacts import load_trained_model  # Keras: on the worker only

    # A scoring worker keeps the few artifacts it serves in memory between chunks; how the
    # network predicts (XLA on a CPU, cuDNN on a GPU) is scoring.predict's to choose.
    return load_trained_model(Path(path))


def _part_ranges(first: int, last: int, parts: int) -> list[tuple[int, int]]:
    """[first, last] cut into up to ``parts`` id ranges of equal width (ids are dense)."""
    edges = np.unique(np.linspace(first, last + 1, parts + 1).round().astype(np.int64))
    return [(int(a), int(b) - 1) for a, b in itertools.pairwise(edges)]


@dataclass
class _ScoredPart:
    customer_ids: np.ndarray
    lifecycle: np.ndarray
    predictions: Predictions


def _score_part(bundle, data, *, as_of: int) -> _ScoredPart:
    """Sequences, predictions and lifecycle segments of one part's customers (no database)."""
    from modeling.scoring import predict  # Keras: on the worker only

    events = data.event_arrays(as_of=as_of)
    return _ScoredPart(
        customer_ids=data.customer_ids,
        lifecycle=lifecycle_from_events(events, as_of=as_of),
        predictions=predict(bundle, events),
    )


def score_chunk(
    *, version: ModelVersion, index: int, first: int, last: int, as_of: int
) -> ScoreChunk:
    """Predict for customers with ids in [first, last]; write the chunk file atomically.

    The chunk goes in parts: each part is read here, on this thread's database connection (it
    sees what the caller's transaction sees), and predicted in a helper thread while the next
    part is read."""
    bundle = _bundle(version.artifact_path)
    reads = (
        merchant_data_load(merchant=version.merchant, customer_range=part, with_treatments=False)
        for part in _part_ranges(first, last, SCORE_CHUNK_PARTS)
    )
    # map submits each part as soon as it is read: the helper predicts while the next is read
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-predict") as pool:
        parts = list(pool.map(functools.partial(_score_part, bundle, as_of=as_of), reads))
    columns = {
        "customer_id": pa.array(np.concatenate([p.customer_ids for p in parts]), pa.int64()),
        # The lifecycle segment as of scoring: strategies stratify their holdout by it and
        # report per segment, without reading the events again.
        "lifecycle": pa.array(np.concatenate([p.lifecycle for p in parts]), pa.int8()),
    }
    p_convert = np.concatenate([p.predictions.p_convert for p in parts])
    values = [p.predictions.order_value for p in parts]
    order_value = None if any(v is None for v in values) else np.concatenate(values)
    for position, arm in enumerate(bundle.arms):
        columns[f"p_{arm}"] = pa.array(p_convert[:, position], pa.float32())
        if order_value is not None:
            columns[f"ov_{arm}"] = pa.array(order_value[:, position], pa.float32())
    folder = Path(version.artifact_path) / "scores"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"chunk-{index:05d}.parquet"
    partial = folder / f".chunk-{index:05d}-{uuid.uuid4().hex[:8]}.tmp"
    pq.write_table(pa.table(columns), partial)
    os.replace(partial, path)  # readers see the old file or the new one, never half of one
    chunk, _created = ScoreChunk.objects.update_or_create(
        version=version,
        index=index,
        defaults={
            "first_customer_id": first,
            "last_customer_id": last,
            "rows": len(p_convert),
            "path": str(path),
        },
    )
    return chunk


def scoring_as_of(*, version: ModelVersion) -> int:
    """Score as of the merchant's newest data (its "now"), so recency means what it meant."""
    latest = merchant_latest_event_time(merchant=version.merchant)
    return (latest + 1) if latest is not None else int(timezone.now().timestamp())


def scoring_finish(*, job: Job, version: ModelVersion, chunks: int) -> None:
    from modeling.segment_service import model_version_segment_summary_refresh

    done = ScoreChunk.objects.filter(version=version).count()
    # The segments page reads this one row instead of every customer's scores.
    model_version_segment_summary_refresh(version=version)
    ModelVersion.objects.filter(pk=version.pk).update(scored_at=timezone.now())
    job_succeed(
        job=job,
        result={"chunks": done},
        message=_("Scored all customers in %(n)s chunks") % {"n": chunks},
    )


def score_chunk_report(*, job_id: int, version: ModelVersion, total: int) -> None:
    done = ScoreChunk.objects.filter(version=version).count()
    Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        progress=min(5 + int(90 * done / max(total, 1)), 99),
        message=_("Scored %(done)s of %(total)s chunks of customers")
        % {"done": done, "total": total},
    )


def job_is_live(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).exists()


@dataclass
class VersionScores:
    customer_ids: np.ndarray  # int64
    arms: list[str]
    p_convert: np.ndarray  # float32 [n, A]
    order_value: np.ndarray | None  # float32 [n, A]
    # int8 codes into modeling.segments.LIFECYCLE_SEGMENTS; None for chunks scored before
    # scoring wrote them.
    lifecycle: np.ndarray | None = None


def model_version_scores(*, version: ModelVersion) -> VersionScores:
    """All of a version's customer scores, read from its chunk files in one pass."""
    paths = list(
        ScoreChunk.objects.filter(version=version).order_by("index").values_list("path", flat=True)
    )
    if not paths:
        raise ScoringError(_("This model has not scored the customers yet."))
    tables = [pq.read_table(path) for path in paths]
    has_lifecycle = all("lifecycle" in t.column_names for t in tables)
    if not has_lifecycle:
        tables = [
            t.drop_columns(["lifecycle"]) if "lifecycle" in t.column_names else t for t in tables
        ]
    table = pa.concat_tables(tables)
    arms = list(version.arms)
    p = np.column_stack([table.column(f"p_{arm}").to_numpy() for arm in arms])
    has_value = all(f"ov_{arm}" in table.column_names for arm in arms)
    value = (
        np.column_stack([table.column(f"ov_{arm}").to_numpy() for arm in arms])
        if has_value
        else None
    )
    lifecycle = table.column("lifecycle").to_numpy() if has_lifecycle else None
    return VersionScores(table.column("customer_id").to_numpy(), arms, p, value, lifecycle)
