"""Staging and merging: validated rows go into a temporary table, then into the real tables.

Chunks are appended to the staging table as they are read; once the whole input has passed,
one SQL statement per table merges it, sorted in key order (much cheaper for the index than
merging chunk by chunk). All of it runs in the caller's one transaction: all or nothing. On
PostgreSQL the staging table is filled with COPY (pyarrow writes the CSV stream in C++;
timestamps travel as integer microseconds, fifty times cheaper to write than text); on SQLite
(the embedded demo) with executemany. Rows already present (same fingerprint, or same customer
id) are not added again. Customer ids are resolved in memory (CustomerIndex) before staging.

Events, the one large kind, wait in a spool on disk instead (EventStage): a fresh load goes
from there straight into the events table, sorted, in one binary COPY.
"""

from __future__ import annotations

import io
import itertools
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from django.conf import settings
from django.db import connection
from django.utils import timezone
from pgpq import ArrowToPostgresBinaryEncoder

from promo_portal.arrow_sql import read_arrow

_STAGE_COLUMNS = {
    "customers": [
        ("line", "bigint"),
        ("customer_ext", "text"),
        ("attributes", "text"),
        ("fingerprint", "bigint"),
    ],
    "events": [
        ("line", "bigint"),
        ("customer_ext", "text"),
        ("customer_id", "bigint"),
        ("ts", "timestamp"),
        ("event_type", "text"),
        ("item_id", "text"),
        ("category", "text"),
        ("price", "numeric"),
        ("quantity", "integer"),
        ("fingerprint", "bigint"),
    ],
    "treatments": [
        ("line", "bigint"),
        ("customer_ext", "text"),
        ("customer_id", "bigint"),
        ("arm", "text"),
        ("assigned_at", "timestamp"),
        ("propensity", "double precision"),
        ("converted", "boolean"),
        ("revenue", "numeric"),
        ("fingerprint", "bigint"),
    ],
    "outcomes": [
        ("line", "bigint"),
        ("customer_ext", "text"),
        ("customer_id", "bigint"),
        ("order_id", "text"),
        ("ordered_at", "timestamp"),
        ("revenue", "numeric"),
        ("code", "text"),
        ("assignment_id", "bigint"),
        ("fingerprint", "bigint"),
    ],
}


# The first and last event time per customer in one import, applied once at its end.
_STAGE_COLUMNS["seen"] = [
    ("customer_id", "bigint"),
    ("first_ts", "timestamp"),
    ("last_ts", "timestamp"),
]

_LOCK_NAMESPACE = 0x1D0  # pg_advisory_xact_lock(namespace, merchant): event imports


ANALYZE_AFTER_ROWS = 100_000
ANALYZE_QUICK_TARGET = 20  # statistics target of that ANALYZE: samples 300 x 20 rows
_TARGET_TABLES = {
    "customers": "campaigns_customer",
    "events": "campaigns_event",
    "treatments": "campaigns_treatmentlog",
    "outcomes": "campaigns_outcome",
}


@dataclass
class MergeCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    customers_created: int = 0

    def add(self, other: MergeCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.customers_created += other.customers_created


class Stage:
    """A temporary table for one import, living until the surrounding transaction ends."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.columns = _STAGE_COLUMNS[kind]
        self.name = f"import_stage_{uuid.uuid4().hex[:12]}"
        self.postgres = connection.vendor == "postgresql"
        self.rows = 0

    def create(self) -> None:
        definitions = ", ".join(f"{name} {self._sql_type(kind)}" for name, kind in self.columns)
        suffix = " ON COMMIT DROP" if self.postgres else ""
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE {self.name} ({definitions}){suffix}")

    def _sql_type(self, kind: str) -> str:
        if self.postgres:
            return "bigint" if kind == "timestamp" else kind  # microseconds since the epoch
        return {"timestamp": "text", "boolean": "integer", "double precision": "real"}.get(
            kind, kind
        )

    def _timestamp(self, expression: str) -> str:
        """SQL turning a staged timestamp into the target column's type."""
        if self.postgres:
            return f"(TIMESTAMPTZ 'epoch' + {expression} * INTERVAL '1 microsecond')"
        return expression

    def serialize(self, table: pa.Table):
        """The rows in the form ``load`` sends; CPU work that may run in another thread."""
        table = table.select([name for name, _ in self.columns])
        if self.postgres:
            columns = [
                pc.cast(column, pa.int64()) if pa.types.is_timestamp(column.type) else column
                for column in table.columns
            ]
            buffer = io.BytesIO()
            pacsv.write_csv(
                pa.table(columns, names=table.column_names),
                buffer,
                pacsv.WriteOptions(include_header=False),
            )
            return table.num_rows, buffer.getvalue()
        return table.num_rows, list(_sqlite_rows(table))

    def append(self, payload) -> None:
        """Add one chunk's rows (from ``serialize``)."""
        rows, data = payload
        names = ", ".join(name for name, _ in self.columns)
        with connection.cursor() as cursor:
            if rows and self.postgres:
                with cursor.cursor.copy(  # psycopg 3's own cursor, for COPY
                    f"COPY {self.name} ({names}) FROM STDIN (FORMAT csv)"
                ) as copy:
                    copy.write(data)
            elif rows:
                placeholders = ", ".join("%s" for _ in self.columns)
                cursor.executemany(
                    f"INSERT INTO {self.name} ({names}) VALUES ({placeholders})", data
                )
        self.rows += rows

    def analyze(self) -> None:
        # Statistics for the planner before the merge's join with coupon types and customers.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {self.name}")

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")

    def close(self) -> None:
        """Let go of what the stage holds outside the database (nothing, but for events)."""

    # --- merging --------------------------------------------------------------------------

    def merge(
        self, merchant_id: int, *, source: str = "import", seen: Stage | None = None
    ) -> MergeCounts:
        """Add the staged rows to the real table (``seen``: for events, see EventStage)."""
        self.analyze()
        merge = {
            "customers": self._merge_customers,
            "outcomes": self._merge_outcomes,
        }.get(self.kind, self._merge_treatments)
        return self._analyzed(merge(merchant_id, source))

    def _analyzed(self, counts: MergeCounts) -> MergeCounts:
        if self.postgres and counts.inserted >= ANALYZE_AFTER_ROWS:
            # A large import changes the table's statistics at once: the pages' and jobs'
            # next plans (one merchant's rows among many) should not wait for autovacuum. A
            # quick sample does for that (6,000 rows instead of 30,000: 0.06 s instead of
            # 0.25 s on 2M events); autovacuum's own ANALYZE refines it later.
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL default_statistics_target = {ANALYZE_QUICK_TARGET}")
                cursor.execute(f"ANALYZE {_TARGET_TABLES[self.kind]}")
                cursor.execute("SET LOCAL default_statistics_target TO DEFAULT")
        return counts

    def _merge_customers(self, merchant_id: int, source: str) -> MergeCounts:
        existing = self._count_existing_customers(merchant_id)
        patch = (
            "campaigns_customer.attributes || EXCLUDED.attributes"
            if self.postgres
            else "json_patch(campaigns_customer.attributes, excluded.attributes)"
        )
        differs = "IS DISTINCT FROM" if self.postgres else "IS NOT"
        attributes = "CAST(s.attributes AS jsonb)" if self.postgres else "json(s.attributes)"
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO campaigns_customer
                    (merchant_id, external_id, attributes, created_at)
                SELECT %s, s.customer_ext, {attributes}, %s FROM {self.name} s WHERE true
                ON CONFLICT (merchant_id, external_id) DO UPDATE SET attributes = {patch}
                WHERE campaigns_customer.attributes {differs} {patch}""",
                [merchant_id, self._now()],
            )
            touched = cursor.rowcount
        inserted = self.rows - existing
        updated = touched - inserted
        return MergeCounts(inserted=inserted, updated=updated, unchanged=existing - updated)

    def _count_existing_customers(self, merchant_id: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT count(*) FROM {self.name} s JOIN campaigns_customer c
                ON c.merchant_id = %s AND c.external_id = s.customer_ext""",
                [merchant_id],
            )
            return cursor.fetchone()[0]

    def is_fresh(self, merchant_id: int) -> bool:
        """For a "seen" stage: no stored event of these customers lies within their spans.

        An event equal to a staged one would share its customer and time, so then none can
        exist. One index probe per customer, not per row.
        """
        first, last = self._timestamp("a.first_ts"), self._timestamp("a.last_ts")
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT EXISTS (SELECT 1 FROM {self.name} a WHERE EXISTS (
                    SELECT 1 FROM campaigns_event e
                    WHERE e.merchant_id = %s AND e.customer_id = a.customer_id
                        AND e.timestamp >= {first} AND e.timestamp <= {last}))""",
                [merchant_id],
            )
            return not cursor.fetchone()[0]

    def update_customers_seen(self, merchant_id: int) -> int:
        """From a "seen" stage (customer, first and last event time): widen customers' spans;
        returns how many customers changed.

        Once per import, not per chunk: every chunk touches most customers, and each update
        writes a new row version; customers whose span does not widen are not written at all
        (importing a file again rewrites nothing).
        """
        least, greatest = ("LEAST", "GREATEST") if self.postgres else ("min", "max")
        first, last = self._timestamp("a.first_ts"), self._timestamp("a.last_ts")
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE campaigns_customer SET
                    first_seen_at = {least}(COALESCE(first_seen_at, {first}), {first}),
                    last_seen_at = {greatest}(COALESCE(last_seen_at, {last}), {last})
                FROM {self.name} a
                WHERE campaigns_customer.merchant_id = %s
                    AND campaigns_customer.id = a.customer_id
                    AND (first_seen_at IS NULL OR last_seen_at IS NULL
                        OR {first} < first_seen_at OR {last} > last_seen_at)""",
                [merchant_id],
            )
            return cursor.rowcount

    def _merge_treatments(self, merchant_id: int, source: str) -> MergeCounts:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO campaigns_treatmentlog (merchant_id, customer_id, coupon_type_id,
                    assigned_at, propensity, converted, revenue, source, fingerprint)
                SELECT %s, s.customer_id, ct.id, {self._timestamp("s.assigned_at")},
                    s.propensity, s.converted, s.revenue, %s, s.fingerprint
                FROM {self.name} s
                LEFT JOIN campaigns_coupontype ct ON ct.merchant_id = %s AND ct.code = s.arm
                WHERE true
                ON CONFLICT (merchant_id, fingerprint) DO NOTHING""",
                [merchant_id, source, merchant_id],
            )
            inserted = cursor.rowcount
        return MergeCounts(inserted=inserted, unchanged=self.rows - inserted)

    def _merge_outcomes(self, merchant_id: int, source: str) -> MergeCounts:
        # Orders already stored (same order id) stay as they are: importing a file again adds
        # nothing. The attribution was decided and checked before staging (attribution.py).
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO campaigns_outcome (merchant_id, customer_id, order_id,
                    ordered_at, revenue, code, assignment_id, created_at)
                SELECT %s, s.customer_id, s.order_id, {self._timestamp("s.ordered_at")},
                    s.revenue, s.code, s.assignment_id, %s
                FROM {self.name} s WHERE true
                ON CONFLICT (merchant_id, order_id) DO NOTHING""",
                [merchant_id, self._now()],
            )
            inserted = cursor.rowcount
        return MergeCounts(inserted=inserted, unchanged=self.rows - inserted)

    def _lock(self, merchant_id: int) -> None:
        """Serialize imports of one kind into one merchant until the transaction ends."""
        if self.postgres:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, merchant_id]
                )

    def _now(self):
        return connection.ops.adapt_datetimefield_value(timezone.now())


class EventStage(Stage):
    """The stage of an events import: the checked rows wait on the client, spooled to disk in
    buckets by customer id range (memory stays flat), instead of in a staging table.

    A fresh load (no stored event of these customers within the import's span: ``is_fresh``)
    then goes straight into the events table, bucket by bucket, sorted in key order: on
    PostgreSQL in one binary COPY (encoded by pgpq), as fast as a raw COPY of the same rows and
    about twice as fast as a staged ``INSERT ... SELECT`` (bench/ingest.py). Any other load is
    staged from the spool and merged, leaving out the rows already stored.
    """

    BUCKET_ROWS = 250_000  # rows per bucket, roughly: one bucket is sorted in memory at a time

    def __init__(self, *, customer_ids: pa.Array, expected_rows: int) -> None:
        super().__init__("events")
        buckets = int(np.clip(-(-expected_rows // self.BUCKET_ROWS), 1, 256))
        self.spool = _Spool(_range_bounds(customer_ids, buckets))

    def serialize(self, table: pa.Table):
        return self.spool.split(table.select([name for name, _ in self.columns]))

    def append(self, payload) -> None:
        self.rows += self.spool.write(payload)

    def merge(
        self, merchant_id: int, *, source: str = "import", seen: Stage | None = None
    ) -> MergeCounts:
        """Add the spooled rows to the events table. ``seen`` (a "seen" stage of the same rows:
        each customer's first and last time) tells whether the load is fresh."""
        # Locked before looking: another import into this merchant waits until this one
        # commits, then finds its rows (and cannot take the fresh path on their account).
        self._lock(merchant_id)
        fresh = seen is not None and seen.is_fresh(merchant_id)
        return self._analyzed(self._merge_events(merchant_id, fresh=fresh))

    def _merge_events(self, merchant_id: int, *, fresh: bool) -> MergeCounts:
        if not fresh:
            return self._merge_staged(merchant_id)
        # Each bucket is sorted (and encoded) in another thread while the previous one goes in.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-sort") as pool:
            rows = _prefetched(pool, (_event_rows(b, merchant_id) for b in self.spool.buckets()))
            if self.postgres:
                _copy_binary("campaigns_event", rows)
            else:
                names = ", ".join(_EVENT_COLUMNS)
                marks = ", ".join(["%s"] * len(_EVENT_COLUMNS))
                with connection.cursor() as cursor:
                    for table in rows:
                        cursor.executemany(
                            f"INSERT INTO campaigns_event ({names}) VALUES ({marks})",
                            _sqlite_rows(table),
                        )
        return MergeCounts(inserted=self.rows)

    def _merge_staged(self, merchant_id: int) -> MergeCounts:
        """Stage the spooled rows, then add those not stored yet (sorted in key order)."""
        self.rows = 0  # counted again as they are staged
        for bucket in self.spool.buckets():
            super().append(super().serialize(bucket))
        self.analyze()
        with connection.cursor() as cursor:
            if self.postgres:  # room to sort the rows into key order in memory
                cursor.execute("SET LOCAL work_mem = '256MB'")
            # Rows go in sorted in key order: much cheaper for the index than file order. Rows
            # already stored are left out with an anti-join: as idempotent as ON CONFLICT (the
            # lock taken in ``merge`` keeps two imports of one merchant apart) and measured 1.5x
            # faster in bench/ingest.py.
            cursor.execute(
                f"""INSERT INTO campaigns_event (merchant_id, customer_id, timestamp, fingerprint,
                    event_type, item_id, category, price, quantity)
                SELECT %s, s.customer_id, {self._timestamp("s.ts")}, s.fingerprint,
                    s.event_type, s.item_id, s.category, s.price, s.quantity
                FROM {self.name} s WHERE NOT EXISTS (
                    SELECT 1 FROM campaigns_event e
                    WHERE e.merchant_id = %s AND e.customer_id = s.customer_id
                        AND e.timestamp = {self._timestamp("s.ts")}
                        AND e.fingerprint = s.fingerprint)
                ORDER BY s.customer_id, s.ts""",
                [merchant_id, merchant_id],
            )
            inserted = cursor.rowcount
        return MergeCounts(inserted=inserted, unchanged=self.rows - inserted)

    def close(self) -> None:
        """Remove the spooled rows (after the merge, or when the import stops)."""
        self.spool.close()


def _prefetched(pool: ThreadPoolExecutor, items: Iterator) -> Iterator:
    """The items of a lazy iterator, each made in ``pool`` while the caller uses the one before."""
    ahead = pool.submit(next, items, None)
    while (item := ahead.result()) is not None:
        ahead = pool.submit(next, items, None)
        yield item


def _copy_binary(table_name: str, tables: Iterator[pa.Table]) -> None:
    """COPY Arrow tables (of one schema) into a table, in PostgreSQL's binary format."""
    first = next(tables, None)
    if first is None:
        return
    encoder = ArrowToPostgresBinaryEncoder(first.schema)
    sql = f"COPY {table_name} ({', '.join(first.column_names)}) FROM STDIN (FORMAT binary)"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        copy.write(encoder.write_header())
        for table in itertools.chain([first], tables):
            for batch in table.to_batches():
                copy.write(encoder.write_batch(batch))
        copy.write(encoder.finish())


# In the events table's key order, then the values; all but the merchant as staged.
_EVENT_COLUMNS = [
    "merchant_id",
    "customer_id",
    "timestamp",
    "fingerprint",
    "event_type",
    "item_id",
    "category",
    "price",
    "quantity",
]
_PRICE = pa.decimal128(14, 2)  # as Event.price


def _event_rows(bucket: pa.Table, merchant_id: int) -> pa.Table:
    """A bucket's rows as the events table takes them, sorted in its key order."""
    bucket = bucket.sort_by([("customer_id", "ascending"), ("ts", "ascending")])
    columns = {
        "merchant_id": pa.array(np.full(bucket.num_rows, merchant_id, np.int64)),
        "customer_id": bucket.column("customer_id"),
        "timestamp": bucket.column("ts"),  # binary timestamptz: UTC microseconds, as stored
        **{name: bucket.column(name) for name in _EVENT_COLUMNS[3:]},
    }
    columns["price"] = pc.cast(columns["price"], _PRICE)  # exact: prices have two decimals
    return pa.table(columns)


def _range_bounds(customer_ids: pa.Array, buckets: int) -> np.ndarray:
    """Customer ids splitting the merchant's customers into ``buckets`` ranges of equal size:
    bucket k holds the ids from bound k-1 (inclusive) up to bound k."""
    ids = np.sort(np.asarray(customer_ids, dtype=np.int64))
    buckets = min(buckets, len(ids))  # at most one per customer
    if buckets <= 1:
        return np.empty(0, np.int64)
    return np.unique(ids[np.arange(1, buckets) * len(ids) // buckets])


class _Spool:
    """Rows in buckets by customer id range, each an Arrow IPC stream in a temporary folder."""

    def __init__(self, bounds: np.ndarray) -> None:
        self.bounds = bounds
        root = Path(settings.IMPORT_SPOOL_ROOT)
        root.mkdir(parents=True, exist_ok=True)
        self.folder = tempfile.TemporaryDirectory(prefix="import-", dir=root)
        self.writers: dict[int, tuple[pa.NativeFile, pa.ipc.RecordBatchStreamWriter]] = {}

    def split(self, table: pa.Table) -> list[tuple[int, pa.Table]]:
        """One chunk's rows by bucket (CPU work for the reading thread)."""
        customer = table.column("customer_id").to_numpy()
        bucket = np.searchsorted(self.bounds, customer, side="right")
        order = np.argsort(bucket, kind="stable")
        ends = np.cumsum(np.bincount(bucket, minlength=len(self.bounds) + 1))
        grouped = table.take(pa.array(order))
        return [
            (index, grouped.slice(start, end - start))
            for index, (start, end) in enumerate(zip(np.r_[0, ends[:-1]], ends, strict=True))
            if end > start
        ]

    def write(self, parts: list[tuple[int, pa.Table]]) -> int:
        for index, part in parts:
            if index not in self.writers:
                sink = pa.OSFile(str(self._path(index)), "wb")
                self.writers[index] = (sink, pa.ipc.new_stream(sink, part.schema))
            self.writers[index][1].write_table(part)
        return sum(part.num_rows for _, part in parts)

    def buckets(self) -> Iterator[pa.Table]:
        """Each bucket's rows, in customer id order of the buckets; each file goes once read."""
        indexes = sorted(self.writers)
        self._close_files()
        for index in indexes:
            path = self._path(index)
            with pa.OSFile(str(path), "rb") as source:
                table = pa.ipc.open_stream(source).read_all()
            path.unlink()
            yield table

    def close(self) -> None:
        self._close_files()
        self.folder.cleanup()

    def _close_files(self) -> None:
        for sink, writer in self.writers.values():
            writer.close()
            sink.close()
        self.writers = {}

    def _path(self, index: int) -> Path:
        return Path(self.folder.name) / f"bucket-{index:04d}.arrows"


def _sqlite_rows(table: pa.Table):
    """Rows for SQLite, with timestamps in Django's storage format (UTC, 'YYYY-MM-DD HH:MM:SS')."""
    columns = []
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            # "%S" renders microseconds too; Django writes them only when they are not zero.
            text = pc.strftime(column, format="%Y-%m-%d %H:%M:%S", locale="C")
            column = pc.replace_substring_regex(text, r"\.000000$", "")
        elif pa.types.is_boolean(column.type):
            column = pc.cast(column, pa.int8())
        columns.append(column.to_pylist())
    return zip(*columns, strict=True)


class CustomerIndex:
    """The merchant's customers, external id -> id, for resolving rows in memory (vectorized)."""

    def __init__(self, merchant_id: int) -> None:
        self.merchant_id = merchant_id
        self.external_ids, self.ids = self._fetch()

    def _fetch(self) -> tuple[pa.Array, pa.Array]:
        table = read_arrow(
            "SELECT external_id, id FROM campaigns_customer WHERE merchant_id = %s",
            [self.merchant_id],
            {"external_id": pa.string(), "id": pa.int64()},
        )
        return table.column("external_id").combine_chunks(), table.column("id").combine_chunks()

    def resolve(self, external_ids: pa.ChunkedArray | pa.Array) -> pa.Array:
        """The customer id of each external id; null where the merchant has no such customer."""
        positions = pc.index_in(external_ids, value_set=self.external_ids)
        return pc.take(self.ids, positions)

    def missing(self, external_ids: pa.Array) -> pa.Array:
        """The distinct external ids the merchant does not have."""
        distinct = pc.unique(external_ids.drop_null())
        return distinct.filter(pc.invert(pc.is_in(distinct, value_set=self.external_ids)))

    def create(self, external_ids: pa.Array) -> int:
        """Create customers (no attributes) for these external ids; returns how many."""
        if len(external_ids) == 0:
            return 0
        empty = "CAST('{}' AS jsonb)" if connection.vendor == "postgresql" else "'{}'"
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            cursor.executemany(
                f"""INSERT INTO campaigns_customer
                    (merchant_id, external_id, attributes, created_at)
                VALUES (%s, %s, {empty}, %s) ON CONFLICT (merchant_id, external_id) DO NOTHING""",
                [(self.merchant_id, external_id, now) for external_id in external_ids.to_pylist()],
            )
        self.external_ids, self.ids = self._fetch()
        return len(external_ids)
