"""Where a machine's history comes from: CSV, Parquet or a SQL query, read in chunks.

Each reader returns a :class:`Source`: an iterator of raw DataFrames in file order (no
chunk larger than ``chunk_rows``) and, when cheap to know, the number of rows. Readers
never load a whole file; unreadable input raises ``InvalidInput`` naming the problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd

from mmlw.errors import InvalidInput

__all__ = ["SEPARATORS", "Source", "csv_source", "parquet_source", "sniff_separator", "sql_source"]

SEPARATORS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 * 1024


@dataclass
class Source:
    chunks: Iterator[pd.DataFrame]
    total_rows: int | None = None


def sniff_separator(header: str) -> str:
    """The candidate separator occurring most often in the header line (``,`` if none).

    >>> sniff_separator("datetime;Current;Pressure")
    ';'
    """
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def csv_source(
    data: Path | IO[bytes], *, sep: str | None = None, chunk_rows: int = 100_000
) -> Source:
    """A CSV file (path or binary stream; UTF-8, optional BOM, one header row)."""
    handle: IO[bytes] = data.open("rb") if isinstance(data, Path) else data
    total = _count_lines(handle) - 1 if isinstance(data, Path) else None
    if sep is None:
        head = handle.read(_SNIFF_BYTES)
        handle.seek(0)
        sep = sniff_separator(head.decode("utf-8-sig", errors="replace").partition("\n")[0])

    def chunks() -> Iterator[pd.DataFrame]:
        try:
            reader = pd.read_csv(
                handle, sep=sep, chunksize=chunk_rows, encoding="utf-8-sig", skipinitialspace=True
            )
            for chunk in reader:
                chunk.columns = [str(name).strip() for name in chunk.columns]
                yield chunk
        except pd.errors.EmptyDataError:
            raise InvalidInput("file", "empty, expected a header row and readings") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InvalidInput(
                "file", f"not readable as CSV with separator {sep!r} ({exc})"
            ) from None
        finally:
            if isinstance(data, Path):
                handle.close()

    return Source(chunks(), total)


def parquet_source(data: Path | IO[bytes], *, chunk_rows: int = 100_000) -> Source:
    """A Parquet file, read one record batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(data)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput("file", f"not a readable Parquet file ({exc})") from None

    def chunks() -> Iterator[pd.DataFrame]:
        try:
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        except pa.ArrowException as exc:
            raise InvalidInput("file", f"Parquet data not readable ({exc})") from None

    return Source(chunks(), parquet.metadata.num_rows)


def sql_source(url: str, query: str, *, chunk_rows: int = 100_000) -> Source:
    """The rows of ``query`` on the database at SQLAlchemy ``url``, streamed."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
    except (sa.exc.SQLAlchemyError, ValueError) as exc:
        raise InvalidInput("sql_url", str(exc)) from None

    def chunks() -> Iterator[pd.DataFrame]:
        try:
            with engine.connect() as connection:
                streaming = connection.execution_options(stream_results=True)
                yield from pd.read_sql_query(sa.text(query), streaming, chunksize=chunk_rows)
        except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
            raise InvalidInput("query", str(exc).splitlines()[0]) from None
        finally:
            engine.dispose()

    return Source(chunks())


def _count_lines(handle: IO[bytes]) -> int:
    """Newlines in the file (a last line without one counts too); rewinds the handle."""
    lines, last = 0, b"\n"
    for block in iter(lambda: handle.read(1 << 20), b""):
        lines += block.count(b"\n")
        last = block[-1:]
    handle.seek(0)
    return lines + (last != b"\n")
