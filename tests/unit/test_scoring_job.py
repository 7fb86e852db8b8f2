"""Scoring every customer in chunks (a chord on the scoring queue; eager in unit tests)."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.test import override_settings

from campaigns.models import Customer, Merchant, TreatmentLog
from campaigns.simulated import merchant_load_simulation
from modeling import scoring_service
from modeling.models import Job, ScoreChunk
from modeling.scoring_service import model_version_score, model_version_scores
from modeling.training_service import model_version_train

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def _trained_once(django_db_setup, django_db_blocker, tmp_path_factory):
    """One merchant and model for the module's tests, trained once through the training job
    (about 45 s) and committed; each test's changes roll back with its transaction, and the
    merchant goes when the module is done."""
    root = tmp_path_factory.mktemp("scoring")
    with (
        django_db_blocker.unblock(),
        override_settings(MEDIA_ROOT=root / "media", MODEL_ARTIFACT_ROOT=root / "models"),
    ):
        merchant = Merchant.objects.create(name="Sim", slug="sim")
        merchant_load_simulation(merchant=merchant, customers=500, seed=6, report=lambda _: None)
        # Outside a test's transaction the job's task is sent (eagerly run) as the training
        # service's own transaction commits.
        version = model_version_train(merchant=merchant, actor=None, epochs=1)
        version.refresh_from_db()
    assert version.status == "ready", version.error
    yield version
    with django_db_blocker.unblock():
        TreatmentLog.objects.filter(merchant=merchant).delete()  # they protect the coupon types
        merchant.delete()


@pytest.fixture
def trained(_trained_once, db):
    """The module's model, with no score files left by an earlier test."""
    shutil.rmtree(Path(_trained_once.artifact_path) / "scores", ignore_errors=True)
    _trained_once.refresh_from_db()
    return _trained_once


def test_every_customer_is_scored_in_chunks(trained, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = model_version_score(version=trained, actor=None, chunk_size=120)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.progress == 100
    assert ScoreChunk.objects.filter(version=trained).count() == 5  # 500 customers / 120
    scores = model_version_scores(version=trained)
    customer_ids = np.sort(
        np.array(Customer.objects.filter(merchant=trained.merchant).values_list("id", flat=True))
    )
    np.testing.assert_array_equal(scores.customer_ids, customer_ids)
    assert scores.p_convert.shape == (500, 6)
    assert np.all((scores.p_convert >= 0) & (scores.p_convert <= 1))
    trained.refresh_from_db()
    assert trained.scored_at is not None


def test_a_chunk_scored_twice_writes_nothing_twice(trained):
    ranges = scoring_service.score_chunk_ranges(version=trained, size=200)
    as_of = scoring_service.scoring_as_of(version=trained)
    first = scoring_service.score_chunk(
        version=trained, index=0, first=ranges[0][0], last=ranges[0][1], as_of=as_of
    )
    again = scoring_service.score_chunk(
        version=trained, index=0, first=ranges[0][0], last=ranges[0][1], as_of=as_of
    )
    assert ScoreChunk.objects.filter(version=trained).count() == 1
    assert first.path == again.path and again.rows == 200
    files = list((Path(trained.artifact_path) / "scores").iterdir())
    assert [f.name for f in files] == ["chunk-00000.parquet"]  # no partial files left behind


def test_a_cancelled_scoring_job_writes_no_more_chunks(trained):
    job = Job.objects.create(merchant=trained.merchant, kind="score", status="cancelled")
    from modeling.tasks import score_chunk

    assert score_chunk.apply(args=[job.pk, trained.pk, 0, 0, 2**40, 0, 1]).result == 0
    assert not ScoreChunk.objects.exists()


def test_a_chunk_scored_in_parts_equals_one_scored_whole(trained, monkeypatch):
    """Parts are read while the previous one is predicted: the chunk file is the same."""
    import pyarrow.parquet as pq

    ranges = scoring_service.score_chunk_ranges(version=trained, size=500)
    (first, last), as_of = ranges[0], scoring_service.scoring_as_of(version=trained)
    tables = {}
    for parts in (1, 7):
        monkeypatch.setattr(scoring_service, "SCORE_CHUNK_PARTS", parts)
        chunk = scoring_service.score_chunk(
            version=trained, index=0, first=first, last=last, as_of=as_of
        )
        tables[parts] = pq.read_table(chunk.path)
        assert chunk.rows == 500
    assert tables[7].equals(tables[1])


@pytest.mark.parametrize(("first", "last", "parts"), [(1, 1, 5), (10, 19, 3), (5, 1_000_004, 5)])
def test_part_ranges_cover_the_chunk_once(first, last, parts):
    ranges = scoring_service._part_ranges(first, last, parts)
    assert ranges[0][0] == first and ranges[-1][1] == last
    assert all(b + 1 == c for (_, b), (c, _) in itertools.pairwise(ranges))
    assert all(a <= b for a, b in ranges) and len(ranges) <= parts
