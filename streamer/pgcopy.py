"""The PostgreSQL path of the child: read the result with COPY and parse it with Arrow.

`COPY (query) TO STDOUT WITH (FORMAT csv)` is the fastest way out of PostgreSQL, because the
server renders every value as text in C. Arrow's CSV reader then turns a chunk of rows into string
columns in C++, and keeps NULL (an unquoted empty field) apart from the empty string (`""`). The values are
PostgreSQL's own text output, the same the row-by-row path receives from its typecaster.

COPY takes no parameters. psycopg2 always binds on the client, by quoting each value into the
statement with its adapters, so this path asks it for the same quoted statement
(`cursor.mogrify`) and wraps that in COPY.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import pandas as pd
import psycopg2
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import TextClause


class ChunkWriter:
    """The file object COPY writes to: psycopg2 calls `write` once per row."""

    def __init__(self, column_count: int, chunk_rows: int, send: Callable[[pd.DataFrame], None]) -> None:
        self.labels = [str(position) for position in range(column_count)]
        self.chunk_rows = chunk_rows
        self.send = send
        self.lines: list[bytes] = []
        self.rows = 0

    def write(self, line: bytes) -> None:
        self.lines.append(line)
        if len(self.lines) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        data = b"".join(self.lines)
        self.rows += len(self.lines)
        self.lines = []
        self.send(self.parse(data))

    def parse(self, data: bytes) -> pd.DataFrame:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=self.labels),
            # In one-column output COPY writes a NULL as an empty line, which must stay a row.
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(self.labels, pa.string()),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                null_values=[""],
            ),
        )
        return table.to_pandas(types_mapper=pd.ArrowDtype)


def copy_statement(connection: Connection, statement: TextClause, bindings: dict[str, Any]) -> str:
    """Return `COPY (statement) TO STDOUT` with the values quoted in by psycopg2's adapters."""
    # Expanding (list) parameters need their values at compile time to render one placeholder
    # per item.
    bound = statement.bindparams(**bindings)
    compiled = bound.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    parameters = compiled.params
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        query = cursor.mogrify(str(compiled), parameters).decode()
    finally:
        cursor.close()
    return f"COPY (\n{query}\n) TO STDOUT WITH (FORMAT csv)"


def send_chunks_by_copy(
    connection: Connection,
    statement: TextClause,
    bindings: dict[str, Any],
    column_count: int,
    chunk_rows: int,
    send: Callable[[pd.DataFrame], None],
) -> int:
    """Run statement through COPY, calling send with each chunk of chunk_rows rows; return the rows.

    send blocks while the queue to the parent is full, which stops reading from the server, so a
    slow client holds COPY back instead of letting rows pile up.
    """
    writer = ChunkWriter(column_count, chunk_rows, send)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(copy_statement(connection, statement, bindings), writer)
    except psycopg2.OperationalError:
        # SQLAlchemy did not run this statement, so it has not seen that the connection is lost.
        # Its rollback on the way out would then fail with "connection already closed" and hide
        # the error that explains the loss.
        connection.invalidate()
        raise
    finally:
        with contextlib.suppress(psycopg2.InterfaceError):
            cursor.close()
    writer.flush()
    return writer.rows
