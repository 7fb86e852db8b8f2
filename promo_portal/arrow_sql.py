"""Reading query results as Arrow columns, without a Python object per row.

On PostgreSQL the query runs inside ``COPY (...) TO STDOUT`` and pyarrow parses the CSV stream
(in C++); on SQLite (the embedded demo, small data) the rows are fetched and converted. Used
wherever a service reads a million rows (model datasets, realized results).
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
from django.db import connection

__all__ = ["epoch_microseconds", "epoch_seconds", "read_arrow"]


def epoch_seconds(column: str) -> str:
    """SQL for a timestamp column as whole seconds since the epoch (UTC)."""
    if connection.vendor == "postgresql":
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS bigint)"
    return f"CAST(strftime('%%s', {column}) AS integer)"


def epoch_microseconds(column: str) -> str:
    """SQL for a timestamp column as microseconds since the epoch (UTC), exactly."""
    if connection.vendor == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS bigint)"
    # Django stores 'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC) in SQLite
    return (
        f"(CAST(strftime('%%s', {column}) AS integer) * 1000000"
        f" + CASE WHEN length({column}) > 20 THEN CAST(substr({column} || '000000', 21, 6)"
        f" AS integer) ELSE 0 END)"
    )


def read_arrow(sql: str, params: list, types: dict[str, pa.DataType]) -> pa.Table:
    """The rows of ``sql`` as a table with these column names and types, in select order."""
    names = list(types)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            buffer = io.BytesIO()
            with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", params) as copy:
                for block in copy:
                    buffer.write(block)
            if buffer.tell() == 0:
                return pa.table({name: pa.array([], kind) for name, kind in types.items()})
            buffer.seek(0)
            return pacsv.read_csv(
                buffer,
                read_options=pacsv.ReadOptions(column_names=names),
                convert_options=pacsv.ConvertOptions(
                    column_types=types, true_values=["t"], false_values=["f"]
                ),
            )
        cursor.execute(sql, params)
        columns = list(zip(*cursor.fetchall(), strict=True)) or [[] for _ in names]
    return pa.table(
        {
            name: pa.array([bool(v) if kind == pa.bool_() else v for v in values], kind)
            for (name, kind), values in zip(types.items(), columns, strict=True)
        }
    )
