"""Full exports: a query's whole result written to a Parquet file in Arrow record batches,
never the whole result in memory (see docs/querygate.md, "Exports").

Each engine produces a stream of ``pyarrow.RecordBatch`` (DuckDB: its own Arrow batch
reader; PostgreSQL and Spark: rows fetched in batches and converted with a fixed schema made
from the columns' DuckDB types) and hands it to ``write_batches``, which appends them to a
``pyarrow.parquet.ParquetWriter`` and stops at the export cap (rows or bytes). The caller
owns the path: it is a temporary name that is renamed into place only when the export is
whole, and removed otherwise. Nothing here imports Django.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow is imported where it is used, never at import time: the sandbox's zygote imports
# the engine modules, and pyarrow's libraries in every child's address space (RLIMIT_AS)
# would leave the capped queries less of their memory budget.

#: Rows per Arrow batch read from the engine and written to the file (at most), and the
#: bytes a batch should hold: ``batch_rows_for`` picks the rows from the result's width.
BATCH_ROWS = 65_536
BATCH_BYTES = 16 * 1024**2


def batch_rows_for(row_bytes: float) -> int:
    """Rows per batch for rows of about ``row_bytes``: ``BATCH_BYTES`` of them, between 256
    and ``BATCH_ROWS`` (a batch is what an export holds in memory at a time)."""
    return int(max(256, min(BATCH_ROWS, BATCH_BYTES // max(1.0, row_bytes))))


@dataclasses.dataclass(frozen=True)
class ExportStats:
    """What an export wrote: ``rows`` and ``bytes`` (Arrow's in-memory size of the batches:
    what ``max_bytes`` counts), and ``cut_by`` ``"rows"`` or ``"bytes"`` when it stopped at
    the cap (the file is then incomplete and must not be served) or ``""`` when whole.
    ``batches`` is how many batches were read (never one for a result larger than a
    batch: the result was streamed)."""

    rows: int
    bytes: int
    cut_by: str
    batches: int


def unique_names(columns: list[str]) -> list[str]:
    """Column names made unique for the file (``n``, ``n`` -> ``n``, ``n_2``)."""
    seen: set[str] = set()
    names = []
    for column in columns:
        name, n = column, 1
        while name.lower() in seen:
            n += 1
            name = f"{column}_{n}"
        seen.add(name.lower())
        names.append(name)
    return names


def write_batches(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    path: str | Path,
    *,
    max_rows: int,
    max_bytes: int,
) -> ExportStats:
    """Append ``batches`` to a new Parquet file at ``path`` until they end or pass
    ``max_rows`` / ``max_bytes``. The file is opened before the first batch (an empty
    result is a valid file with its columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [f.with_name(n) for f, n in zip(schema, unique_names(schema.names), strict=True)]
    )
    rows = size = count = 0
    cut_by = ""
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        for batch in batches:
            count += 1
            if batch.num_rows == 0:
                continue
            if rows + batch.num_rows > max_rows:
                cut_by = "rows"
                break
            if size + batch.nbytes > max_bytes:
                cut_by = "bytes"
                break
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
            rows += batch.num_rows
            size += batch.nbytes
    return ExportStats(rows, size, cut_by, count)


# ------------------------------------------------------------------ rows -> Arrow batches


def _arrow_types() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {
        "BOOLEAN": pa.bool_(),
        "TINYINT": pa.int8(),
        "SMALLINT": pa.int16(),
        "INTEGER": pa.int32(),
        "BIGINT": pa.int64(),
        "FLOAT": pa.float32(),
        "REAL": pa.float32(),
        "DOUBLE": pa.float64(),
        "DATE": pa.date32(),
        "TIME": pa.time64("us"),
        "TIMESTAMP": pa.timestamp("us"),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
        "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
    }


def arrow_type(duckdb_type: str) -> pa.DataType:
    """The Arrow type a column of DuckDB type ``duckdb_type`` is exported as: the scalar
    types as themselves, ``DECIMAL(p,s)`` as ``decimal128``, anything else (UUID, nested,
    JSON, intervals, binary) as text, as in the stored result."""
    import pyarrow as pa

    name = duckdb_type.upper()
    if name.startswith("DECIMAL(") and name.endswith(")"):
        precision, _, scale = name[8:-1].partition(",")
        return pa.decimal128(int(precision), int(scale or 0))
    return _arrow_types().get(name, pa.string())


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _converter(kind: pa.DataType) -> Callable[[Any], Any]:
    import pyarrow as pa

    if pa.types.is_string(kind):
        return _text
    if pa.types.is_floating(kind):
        return lambda v: None if v is None else float(v)
    if pa.types.is_decimal(kind):
        return lambda v: v if v is None or isinstance(v, Decimal) else Decimal(str(v))
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        return lambda v: v if v is None or v.tzinfo is not None else v.replace(tzinfo=dt.UTC)
    return lambda v: v


def schema_of(columns: list[str], duckdb_types: Iterable[str]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [pa.field(c, arrow_type(t)) for c, t in zip(columns, duckdb_types, strict=True)]
    )


def batches_from_rows(
    fetch: Callable[[int], list[Any]], schema: pa.Schema, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Arrow batches of ``schema`` from a DB-API style ``fetch(n)`` (``fetchmany``) that
    returns at most ``n`` rows, and none at the end. One batch of rows is held at a time."""
    import pyarrow as pa

    convert = [_converter(f.type) for f in schema]
    while True:
        rows = fetch(batch_rows)
        if not rows:
            return
        columns = [
            pa.array([c(row[i]) for row in rows], type=field.type)
            for i, (field, c) in enumerate(zip(schema, convert, strict=True))
        ]
        yield pa.RecordBatch.from_arrays(columns, schema=schema)
