"""read_arrow on PostgreSQL: COPY ... TO STDOUT read row by row from libpq, parsed by pyarrow."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest
from django.db import DataError, ProgrammingError, connection, transaction

from campaigns.models import Customer
from promo_portal import arrow_sql
from promo_portal.arrow_sql import read_arrow

pytestmark = [pytest.mark.integration]

AWKWARD = ["plain", 'say "hi"', "a,b", "two\nlines", "ünï €", "", None]


@pytest.mark.django_db
def test_rows_come_back_typed_and_in_select_order_with_awkward_text():
    table = read_arrow(
        """SELECT n, label, n %% 2 = 0, n * 0.5
        FROM unnest(%s::text[]) WITH ORDINALITY AS t(label, n) ORDER BY n DESC""",
        [AWKWARD],
        {"n": pa.int64(), "label": pa.string(), "even": pa.bool_(), "half": pa.float64()},
    )
    assert table.column("n").to_pylist() == list(range(len(AWKWARD), 0, -1))
    # pyarrow's CSV reader gives text columns no nulls: a NULL text reads back as ""
    assert table.column("label").to_pylist() == [label or "" for label in reversed(AWKWARD)]
    assert table.column("even").to_pylist() == [n % 2 == 0 for n in range(len(AWKWARD), 0, -1)]
    assert table.column("half").to_pylist() == [n * 0.5 for n in range(len(AWKWARD), 0, -1)]


@pytest.mark.django_db
def test_a_large_result_arrives_whole():
    """Far more rows than libpq's buffer holds at once: every row, once, in order."""
    table = read_arrow(
        "SELECT x, md5(x::text) FROM generate_series(1, %s) AS x ORDER BY x",
        [300_000],
        {"x": pa.int64(), "digest": pa.string()},
    )
    assert table.num_rows == 300_000
    assert table.column("x").to_pylist() == list(range(1, 300_001))
    digests = [
        hashlib.md5(str(x).encode(), usedforsecurity=False).hexdigest() for x in range(1, 300_001)
    ]
    assert table.column("digest").to_pylist() == digests


@pytest.mark.django_db
def test_no_rows_give_an_empty_table_of_the_given_types():
    table = read_arrow("SELECT 1, 'x' WHERE false", [], {"one": pa.int64(), "text": pa.string()})
    assert table.num_rows == 0
    assert table.schema == pa.schema({"one": pa.int64(), "text": pa.string()})


@pytest.mark.django_db
def test_the_read_sees_the_callers_transaction(merchant_a):
    with transaction.atomic():
        customer = Customer.objects.create(merchant=merchant_a, external_id="fresh")
        table = read_arrow(
            "SELECT id, external_id FROM campaigns_customer WHERE merchant_id = %s",
            [merchant_a.pk],
            {"id": pa.int64(), "external_id": pa.string()},
        )
    assert table.to_pylist() == [{"id": customer.pk, "external_id": "fresh"}]


@pytest.mark.django_db
def test_jit_is_off_for_the_read():
    table = read_arrow("SELECT current_setting('jit')", [], {"jit": pa.string()})
    assert table.column("jit").to_pylist() == ["off"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("SELECT no_such_column FROM generate_series(1, 10)", ProgrammingError),
        # fails after some 100k rows have been sent: the COPY is cut short mid-stream
        ("SELECT 1 / (x - 100000) FROM generate_series(1, 200000) AS x", DataError),
    ],
    ids=["at-the-start", "mid-stream"],
)
def test_a_failed_read_raises_and_the_next_query_works(sql, error):
    with pytest.raises(error):
        read_arrow(sql, [], {"value": pa.int64()})
    assert not connection.in_atomic_block
    with connection.cursor() as cursor:
        cursor.execute("SELECT 41 + 1")
        assert cursor.fetchone() == (42,)
    assert read_arrow("SELECT 7", [], {"seven": pa.int64()}).to_pylist() == [{"seven": 7}]


@pytest.mark.django_db(transaction=True)
def test_a_read_cut_short_leaves_a_working_connection(monkeypatch):
    """An exception while rows stream in (a cancelled task, say) ends the read; the next query
    runs on a fresh connection instead of a libpq still in the middle of the COPY."""
    waits = []

    def interrupted(pgconn, **kwargs):
        waits.append(1)
        if len(waits) == 3:
            raise KeyboardInterrupt
        return wait(pgconn, **kwargs)

    wait = arrow_sql._wait
    monkeypatch.setattr(arrow_sql, "_wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        read_arrow("SELECT x FROM generate_series(1, 1000000) AS x", [], {"x": pa.int64()})
    monkeypatch.setattr(arrow_sql, "_wait", wait)
    assert read_arrow("SELECT 7", [], {"seven": pa.int64()}).to_pylist() == [{"seven": 7}]
