"""Storage settings the migrations give PostgreSQL tables, and what they are for."""

from __future__ import annotations

import pytest
from django.db import connection

from campaigns.choices import ImportSource, ImportStatus
from campaigns.imports import service

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _reloptions(table: str) -> list[str] | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [table])
        return cursor.fetchone()[0]


def _updates(table: str) -> tuple[int, int]:
    """(updates, of which heap-only) in this transaction so far."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s",
            [table],
        )
        return cursor.fetchone()


def test_an_events_import_rewrites_customers_seen_times_in_place(merchant_a, tmp_path):
    """Half of each customers page is free (migration 0008): the seen-time update of an events
    import is heap-only, without new index entries, for most customers (a row gains 16 bytes
    when its seen times are first set, so on a full page a few of them still move)."""
    assert _reloptions("campaigns_customer") == ["fillfactor=50"]
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id\n" + "".join(f"C{i}\n" for i in range(500)))
    events = tmp_path / "events.csv"
    events.write_text(
        "customer_id,timestamp,event_type\n"
        + "".join(f"C{i},2026-05-0{1 + i % 9}T10:00:00Z,view\n" for i in range(500))
    )
    for kind, path in (("customers", customers), ("events", events)):
        data_import = service.import_create_from_file(
            merchant=merchant_a, kind=kind, path=path, filename=path.name, actor=None,
            source=ImportSource.COMMAND,
        )  # fmt: skip
        assert service.import_run(data_import=data_import).status == ImportStatus.SUCCEEDED
    updated, heap_only = _updates("campaigns_customer")
    assert updated >= 500
    assert heap_only >= 0.8 * updated  # full pages (fill factor 100): hardly any
