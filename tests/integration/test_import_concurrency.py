"""Two imports of the same events into one merchant at the same moment, on PostgreSQL: the
merchant's import lock is taken before the load looks for stored events, so the second waits,
then finds the first one's rows and adds nothing (instead of both taking the fresh path and one
failing on the primary key)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from campaigns.choices import ImportSource, ImportStatus
from campaigns.imports import service, storage
from campaigns.models import Event

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HEADER = "customer_id,timestamp,event_type,item_id,category,price,quantity\n"


def _import(merchant, kind: str, path) -> object:
    return service.import_create_from_file(
        merchant=merchant,
        kind=kind,
        path=path,
        filename=path.name,
        actor=None,
        source=ImportSource.COMMAND,
    )


def test_two_imports_of_the_same_events_at_once_store_them_once(merchant_a, tmp_path, monkeypatch):
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id\n" + "".join(f"K{i}\n" for i in range(5)))
    assert service.import_run(data_import=_import(merchant_a, "customers", customers)).status == (
        ImportStatus.SUCCEEDED
    )
    events = tmp_path / "events.csv"
    events.write_text(
        HEADER
        + "".join(f"K{i % 5},2026-02-01 10:{i:02d}:00,view,I{i},tea,{i},\n" for i in range(50))
    )
    # Both imports have read and checked every row before either merges.
    barrier = threading.Barrier(2, timeout=60)
    original = storage.EventStage.merge

    def merge_together(self, merchant_id, **options):
        barrier.wait()
        return original(self, merchant_id, **options)

    monkeypatch.setattr(storage.EventStage, "merge", merge_together)
    imports = [_import(merchant_a, "events", events) for _ in range(2)]
    results: list = [None, None]

    def run(index):
        try:
            results[index] = service.import_run(data_import=imports[index])
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert [r.status for r in results] == [ImportStatus.SUCCEEDED] * 2, [r.message for r in results]
    assert sorted((r.rows_inserted, r.rows_unchanged) for r in results) == [(0, 50), (50, 0)]
    assert Event.objects.filter(merchant=merchant_a).count() == 50
