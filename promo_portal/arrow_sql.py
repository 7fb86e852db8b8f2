"""Reading query results as Arrow columns, without a Python object per row.

On PostgreSQL the query runs inside ``COPY (...) TO STDOUT`` and pyarrow parses the CSV stream
(in C++); on SQLite (the embedded demo, small data) the rows are fetched and converted. Used
wherever a service reads a million rows (model datasets, realized results).
"""

from __future__ import annotations

import io
import select

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from django.db import connection, transaction
from psycopg import pq

__all__ = ["epoch_microseconds", "epoch_seconds", "read_arrow"]


def epoch_seconds(column: str) -> str:
    """SQL for a timestamp column as whole seconds since the epoch (UTC)."""
    if connection.vendor == "postgresql":
        # date_part is a float8, exact for whole seconds; EXTRACT's numeric costs more
        return f"CAST(FLOOR(date_part('epoch', {column})) AS bigint)"
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
    if connection.vendor == "postgresql":
        data = _copy_csv(sql, params)
        if not data:
            return pa.table({name: pa.array([], kind) for name, kind in types.items()})
        return pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=names),
            convert_options=pacsv.ConvertOptions(
                column_types=types, true_values=["t"], false_values=["f"]
            ),
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = list(zip(*cursor.fetchall(), strict=True)) or [[] for _ in names]
    return pa.table(
        {
            name: pa.array([bool(v) if kind == pa.bool_() else v for v in values], kind)
            for (name, kind), values in zip(types.items(), columns, strict=True)
        }
    )


def _copy_csv(sql: str, params: list) -> bytes:
    """The rows of ``sql`` as CSV, from ``COPY (sql) TO STDOUT``, in the caller's transaction.

    The rows are taken from libpq one call each: psycopg's ``Copy`` hands them over through a
    generator and its wait loop per row, which cost twice the CPU time of the whole read here
    (the 290k events of a 10k-customer scoring part: 0.19 s against 0.09 s). JIT compilation
    is off for the rest of the transaction: it compiled the expressions of every such read,
    costing more than it saved (0.18 s against 0.15 s of PostgreSQL's time per part).
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        conn, buffer = cursor.connection, io.BytesIO()
        pgconn = conn.pgconn
        with connection.wrap_database_errors:
            copy = f"COPY ({sql}) TO STDOUT (FORMAT csv)"
            query = psycopg.ClientCursor(conn).mogrify(copy, params).encode(conn.info.encoding)
            try:
                results = _copy_out(pgconn, query, buffer)
            except BaseException:
                # Cut short here (a cancelled task, a lost connection), the COPY leaves the
                # connection mid-statement: close it; Django opens a new one when needed.
                connection.close()
                raise
            for result in results:  # the server's own error, once the statement has ended
                if result.status not in (pq.ExecStatus.COPY_OUT, pq.ExecStatus.COMMAND_OK):
                    raise psycopg.errors.error_from_result(result, conn.info.encoding)
    return buffer.getvalue()


def _copy_out(pgconn: pq.abc.PGconn, query: bytes, buffer: io.BytesIO) -> list:
    """Send a ``COPY ... TO STDOUT``, write its rows to ``buffer``; libpq's results."""
    pgconn.send_query(query)
    while pgconn.flush():  # a long query may not go out in one write
        _wait(pgconn, write=True)
    results = [_result(pgconn)]
    if results[0].status == pq.ExecStatus.COPY_OUT:
        while (size := (row := pgconn.get_copy_data(1))[0]) != -1:
            if size:
                buffer.write(row[1])
            else:  # no whole row in libpq's buffer yet
                _wait(pgconn)
    while (result := _result(pgconn)) is not None:
        results.append(result)
    return results


def _wait(pgconn: pq.abc.PGconn, *, write: bool = False) -> None:
    """Until the server's socket has data (or takes more), then read what has come in."""
    poll = select.poll()  # not select.select, which fails on descriptors past 1023
    poll.register(pgconn.socket, select.POLLIN | (select.POLLOUT if write else 0))
    poll.poll()
    pgconn.consume_input()


def _result(pgconn: pq.abc.PGconn) -> pq.abc.PGresult | None:
    """libpq's next result of the statement once it has all come in; None after the last."""
    while pgconn.is_busy():
        _wait(pgconn)
    return pgconn.get_result()
