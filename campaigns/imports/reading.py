"""Turn an upload (CSV in UTF-8, UTF-8 with BOM or GB18030/GBK) or JSON records into chunks.

Each chunk is a pyarrow Table of text columns named by the target schema, with the source line
of every row, so that errors point at the line a person sees in their editor. Files are streamed
in blocks: memory does not grow with the file.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from django.utils.translation import gettext as _

from .schema import LEAVE_OUT, auto_mapping

ENCODINGS = ("utf-8-sig", "utf-8", "gb18030")
SNIFF_BYTES = 1 << 20
BLOCK_BYTES = 8 << 20  # pyarrow's read block: rows up to this long; 8 MiB keeps memory flat
LINE_COLUMN = "__line__"
UNMAPPED_PREFIX = "__unmapped__"  # a column the schema does not know, and no mapping names
LEFT_OUT_PREFIX = "__left_out__"  # a column the mapping leaves out on purpose


class InputError(Exception):
    """The input as a whole cannot be read (encoding, empty, not CSV ...)."""


@dataclass
class Chunk:
    table: pa.Table  # text columns named by target column (or attribute) name, plus __line__
    bytes_read: int  # how far into the source this chunk reaches, for progress


@dataclass
class RowProblem:
    line: int | None
    column: str
    value: str
    reason: str


@dataclass
class Source:
    """An opened input: its header, the mapping from source to target columns, and its chunks."""

    header: list[str]
    targets: dict[str, str]  # source column -> target column ('' = left out), as applied
    size_bytes: int
    chunks: Iterator[Chunk]
    problems: list[RowProblem] = field(default_factory=list)  # rows the reader could not split


def detect_encoding(sample: bytes) -> str:
    """UTF-8 with BOM, UTF-8 or GB18030 (a superset of GBK and GB2312), decided strictly."""
    if not sample.strip():
        raise InputError(_("The file is empty."))
    if b"\x00" in sample:
        raise InputError(_("This is not a text file (it contains NUL bytes); upload a CSV file."))
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    for encoding in ("utf-8", "gb18030"):
        try:
            _decode_prefix(sample, encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    raise InputError(
        _(
            "The file's encoding could not be detected: it is neither UTF-8 nor GB18030/GBK. "
            "Save it as UTF-8 CSV and upload it again."
        )
    )


def _decode_prefix(sample: bytes, encoding: str) -> str:
    # The sample may end inside a multi-byte character: an incremental decoder ignores that tail.
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    return decoder.decode(sample, final=False)


def read_header(path: Path, encoding: str) -> list[str]:
    with open(path, encoding=encoding, newline="") as handle:
        first = handle.readline()
    if not first.strip():
        raise InputError(_("The file is empty."))
    header = next(csv.reader([first]))
    header = [name.strip() for name in header]
    if any(not name for name in header):
        raise InputError(_("The header row has an empty column name."))
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise InputError(
            _("The header names these columns twice: %(columns)s.")
            % {"columns": ", ".join(duplicates)}
        )
    return header


def preview(path: Path, encoding: str, rows: int = 10) -> tuple[list[str], list[list[str]]]:
    """The header and the first rows, for the upload page."""
    header = read_header(path, encoding)
    with open(path, encoding=encoding, newline="", errors="replace") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        body = [row for _index, row in zip(range(rows), reader, strict=False)]
    return header, body


def open_csv(path: Path, *, encoding: str | None, kind: str, mapping: dict[str, str]) -> Source:
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise InputError(_("The file is empty."))
    with open(path, "rb") as handle:
        sample = handle.read(SNIFF_BYTES)
    encoding = encoding or detect_encoding(sample)
    header = read_header(path, encoding)
    targets = _targets(header, mapping, kind)
    problems: list[RowProblem] = []
    skipped: list[int] = []  # physical lines pyarrow skipped, to keep line numbers exact

    def handle_invalid(row) -> str:
        # pyarrow numbers physical lines from 1, the header included.
        skipped.append(row.number)
        if not (row.text or "").strip():
            return "skip"  # a blank line: nothing to import, nothing wrong
        problems.append(
            RowProblem(
                line=row.number,
                column="",
                value=(row.text or "")[:200],
                reason=_(
                    "expected %(expected)s fields, found %(found)s (a truncated or malformed row)"
                )
                % {"expected": row.expected_columns, "found": row.actual_columns},
            )
        )
        return "skip"

    def chunks() -> Iterator[Chunk]:
        with open(path, "rb") as raw:
            reader = _arrow_reader(raw, encoding, header, handle_invalid)
            next_line = 2  # the first data row is line 2
            for batch in _batches(reader, encoding):
                table = pa.Table.from_batches([batch])
                lines = _line_numbers(next_line, table.num_rows, skipped)
                next_line = int(lines[-1]) + 1 if len(lines) else next_line
                yield Chunk(table=_rename(table, targets, pa.array(lines)), bytes_read=raw.tell())

    return Source(
        header=header, targets=targets, size_bytes=size, chunks=chunks(), problems=problems
    )


def _batches(reader, encoding: str):
    try:
        yield from reader
    except pa.ArrowInvalid as error:
        if "utf8" in str(error).lower() or "decode" in str(error).lower():
            message = _(
                "The file could not be read: %(error)s. The file was read as %(encoding)s "
                "(judged from its beginning), but a later part is not; save the whole file in "
                "one encoding (UTF-8 is best)."
            )
        else:
            message = _("The file could not be read: %(error)s.")
        raise InputError(message % {"error": error, "encoding": encoding}) from None


def _line_numbers(first: int, count: int, skipped: list[int]) -> np.ndarray:
    """The physical lines of ``count`` rows read from line ``first`` on, around skipped lines."""
    later = np.array([line for line in skipped if line >= first], dtype=np.int64)
    candidates = np.arange(first, first + count + later.size, dtype=np.int64)
    if later.size:
        candidates = candidates[~np.isin(candidates, later)]
    return candidates[:count]


def _arrow_reader(raw: BinaryIO, encoding: str, header: list[str], on_invalid):
    try:
        return pacsv.open_csv(
            raw,
            read_options=pacsv.ReadOptions(
                encoding="utf8" if encoding in ("utf-8", "utf-8-sig") else encoding,
                block_size=BLOCK_BYTES,
                # The header as read_header cleaned it (trimmed names), not as pyarrow would.
                column_names=header,
                skip_rows=1,
                use_threads=False,  # pyarrow knows a skipped row's line number only then
            ),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        raise InputError(
            _("The file could not be read as CSV: %(error)s") % {"error": error}
        ) from None


def records_source(
    records: list[dict[str, Any]], *, kind: str, mapping: dict[str, str] | None
) -> Source:
    """JSON records (from the API) as one chunk; 'line' is the record's position, from 1."""
    if not isinstance(records, list) or not records:
        raise InputError(_("Send a non-empty JSON array of objects."))
    if not all(isinstance(record, dict) for record in records):
        raise InputError(_("Every item of the array must be a JSON object."))
    header: list[str] = []
    seen: set[str] = set()
    for record in records:
        for key in record:
            if key not in seen:
                seen.add(key)
                header.append(key)
    targets = _targets(header, mapping or {}, kind)
    columns = {
        name: pa.array([_as_text(record.get(name)) for record in records], pa.string())
        for name in header
    }
    table = pa.table(columns)
    lines = pa.array(range(1, len(records) + 1), pa.int64())
    size = sum(len(str(record)) for record in records)
    chunk = Chunk(table=_rename(table, targets, lines), bytes_read=size)
    return Source(header=header, targets=targets, size_bytes=size, chunks=iter([chunk]))


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _targets(header: list[str], mapping: dict[str, str], kind: str) -> dict[str, str]:
    """Source column -> target name ('' = not mapped); a given mapping overrides auto_mapping."""
    automatic = auto_mapping(kind, header)
    return {source: mapping.get(source, automatic[source]) for source in header}


def column_label(source: str, target: str) -> str:
    """A chunk's name for a source column: its target, or a marked name when it has none."""
    if target == LEAVE_OUT:
        return f"{LEFT_OUT_PREFIX}{source}"
    return target or f"{UNMAPPED_PREFIX}{source}"


def _rename(table: pa.Table, targets: dict[str, str], lines: pa.Array) -> pa.Table:
    columns, names = [], []
    for source, column in zip(table.column_names, table.columns, strict=True):
        names.append(column_label(source, targets.get(source, "")))
        columns.append(column)
    columns.append(lines)
    names.append(LINE_COLUMN)
    return pa.table(columns, names=names)
