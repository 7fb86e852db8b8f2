"""Staging and merging: validated rows go into a temporary table, then into the real tables.

On PostgreSQL the staging table is filled with COPY (pyarrow writes the CSV stream in C++); on
SQLite (the embedded demo) with executemany. The merge is one SQL statement per table, so it is
as fast as the database allows, and it runs inside the caller's transaction: all or nothing.
Rows already present (same fingerprint, or same customer id) are not added again.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from django.db import connection
from django.utils import timezone

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
        ("arm", "text"),
        ("assigned_at", "timestamp"),
        ("propensity", "double precision"),
        ("converted", "boolean"),
        ("revenue", "numeric"),
        ("fingerprint", "bigint"),
    ],
}


_LOCK_NAMESPACE = 0x1D0  # pg_advisory_xact_lock(namespace, merchant): event imports


@dataclass
class MergeCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    customers_created: int = 0


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
            return "timestamptz" if kind == "timestamp" else kind
        return {"timestamp": "text", "boolean": "integer", "double precision": "real"}.get(
            kind, kind
        )

    def append(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = table.select([name for name, _ in self.columns])
        names = ", ".join(name for name, _ in self.columns)
        if self.postgres:
            buffer = io.BytesIO()
            pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
            with connection.cursor() as cursor:
                raw = cursor.cursor  # psycopg 3's own cursor, for COPY
                with raw.copy(f"COPY {self.name} ({names}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(buffer.getbuffer())
        else:
            placeholders = ", ".join("%s" for _ in self.columns)
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {self.name} ({names}) VALUES ({placeholders})",
                    _sqlite_rows(table),
                )
        self.rows += table.num_rows

    def analyze(self) -> None:
        # A new table has no statistics: without them both databases may loop over the
        # merchant's customers on the outside of the join (quadratic; seen on SQLite).
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {self.name}")

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")

    # --- checks on the staged rows ------------------------------------------------------------

    def unknown_customers(self, merchant_id: int, limit: int) -> tuple[int, list[tuple[int, str]]]:
        """Rows whose customer id the merchant does not have: (count, first rows)."""
        where = f"""FROM {self.name} s WHERE NOT EXISTS (
            SELECT 1 FROM campaigns_customer c
            WHERE c.merchant_id = %s AND c.external_id = s.customer_ext)"""
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) {where}", [merchant_id])
            count = cursor.fetchone()[0]
            cursor.execute(
                f"SELECT line, customer_ext {where} ORDER BY line LIMIT %s", [merchant_id, limit]
            )
            return count, cursor.fetchall()

    # --- merging --------------------------------------------------------------------------

    def create_missing_customers(self, merchant_id: int) -> int:
        empty = "CAST('{}' AS jsonb)" if self.postgres else "'{}'"
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO campaigns_customer
                    (merchant_id, external_id, attributes, created_at)
                SELECT DISTINCT %s, s.customer_ext, {empty}, %s FROM {self.name} s WHERE true
                ON CONFLICT (merchant_id, external_id) DO NOTHING""",
                [merchant_id, self._now()],
            )
            return cursor.rowcount

    def merge(self, merchant_id: int, *, source: str = "import") -> MergeCounts:
        merge = {"customers": self._merge_customers, "events": self._merge_events}.get(
            self.kind, self._merge_treatments
        )
        return merge(merchant_id, source)

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

    def _merge_events(self, merchant_id: int, source: str) -> MergeCounts:
        self._lock(merchant_id)
        with connection.cursor() as cursor:
            if self.postgres:  # room to sort the rows into key order in memory
                cursor.execute("SET LOCAL work_mem = '256MB'")
            # An anti-join rather than ON CONFLICT: as idempotent (the lock above keeps two
            # imports of one merchant apart) and measured 1.5x faster in bench/ingest.py.
            cursor.execute(
                f"""INSERT INTO campaigns_event (merchant_id, customer_id, timestamp, fingerprint,
                    event_type, item_id, category, price, quantity)
                SELECT %s, c.id, s.ts, s.fingerprint, s.event_type, s.item_id, s.category,
                    s.price, s.quantity
                FROM {self.name} s JOIN campaigns_customer c
                    ON c.merchant_id = %s AND c.external_id = s.customer_ext
                WHERE NOT EXISTS (
                    SELECT 1 FROM campaigns_event e
                    WHERE e.merchant_id = %s AND e.customer_id = c.id AND e.timestamp = s.ts
                        AND e.fingerprint = s.fingerprint)
                ORDER BY c.id, s.ts""",
                [merchant_id, merchant_id, merchant_id],
            )
            inserted = cursor.rowcount
            least, greatest = ("LEAST", "GREATEST") if self.postgres else ("min", "max")
            cursor.execute(
                f"""UPDATE campaigns_customer SET
                    first_seen_at = {least}(COALESCE(first_seen_at, a.first_ts), a.first_ts),
                    last_seen_at = {greatest}(COALESCE(last_seen_at, a.last_ts), a.last_ts)
                FROM (SELECT customer_ext, min(ts) AS first_ts, max(ts) AS last_ts
                      FROM {self.name} GROUP BY customer_ext) a
                WHERE campaigns_customer.merchant_id = %s
                    AND campaigns_customer.external_id = a.customer_ext""",
                [merchant_id],
            )
        return MergeCounts(inserted=inserted, unchanged=self.rows - inserted)

    def _merge_treatments(self, merchant_id: int, source: str) -> MergeCounts:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO campaigns_treatmentlog (merchant_id, customer_id, coupon_type_id,
                    assigned_at, propensity, converted, revenue, source, fingerprint)
                SELECT %s, c.id, ct.id, s.assigned_at, s.propensity, s.converted, s.revenue, %s,
                    s.fingerprint
                FROM {self.name} s
                JOIN campaigns_customer c ON c.merchant_id = %s AND c.external_id = s.customer_ext
                LEFT JOIN campaigns_coupontype ct ON ct.merchant_id = %s AND ct.code = s.arm
                WHERE true
                ON CONFLICT (merchant_id, fingerprint) DO NOTHING""",
                [merchant_id, source, merchant_id, merchant_id],
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
