"""CSV exports: streamed, and safe to open in a spreadsheet.

Every CSV the portal exports goes through :func:`csv_response` (or at least :func:`csv_safe`):
a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be read as a
formula by Excel, LibreOffice and Google Sheets (CSV/formula injection), so it gets a leading
single quote, which spreadsheets show as text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Excel reads a CSV file as the system's legacy code page unless it starts with a BOM; with it,
# Chinese text opens correctly. Other readers skip it.
UTF8_BOM = "\ufeff"


def csv_safe(value: Any) -> Any:
    """The value, with a leading ``'`` when it is a string a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose write() hands the line back, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The CSV text of the header and rows, line by line, every cell neutralized."""
    writer = csv.writer(_Echo())
    yield UTF8_BOM + writer.writerow([csv_safe(cell) for cell in header])
    for row in rows:
        yield writer.writerow([csv_safe(cell) for cell in row])


def csv_response(
    *, filename: str, header: Iterable[Any], rows: Iterable[Iterable[Any]]
) -> StreamingHttpResponse:
    """A streamed CSV download named ``filename``; ``rows`` may be a generator."""
    response = StreamingHttpResponse(
        csv_lines(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=filename
    )
    return response
