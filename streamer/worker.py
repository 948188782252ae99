"""The child process of one download: run the report's query and send its result in chunks.

Everything that crosses to the parent is a plain dataclass that always pickles: driver
exceptions do not always pickle, and a queue drops what fails to pickle without a word.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import TextClause

from streamer.database import create_report_engine
from streamer.kinds import Kind, postgres_kinds, value_kinds
from streamer.values import bindable, build_chunk, is_postgres, prepare_session


@dataclass(frozen=True)
class Job:
    """What the child needs to run one download."""

    download_id: str
    database_url: str
    sql: str
    list_parameters: tuple[str, ...]
    bindings: dict[str, Any]
    chunk_rows: int
    statement_timeout_ms: int = 0


@dataclass(frozen=True)
class Started:
    backend_pid: int | None
    """PostgreSQL's server process for the child's connection, so the parent can cancel it."""


@dataclass(frozen=True)
class Columns:
    names: tuple[str, ...]
    type_codes: tuple[Any, ...]
    """The driver's type code per column: a type OID on PostgreSQL, None on SQLite."""


@dataclass(frozen=True)
class Chunk:
    frame: pd.DataFrame = field(repr=False)
    kinds: tuple[Kind, ...]
    """The kind of each column in this chunk; the same in every chunk on PostgreSQL."""


@dataclass(frozen=True)
class Finished:
    rows: int


@dataclass(frozen=True)
class Failed:
    error_type: str
    message: str
    sqlstate: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> Failed:
        original = exc.orig if isinstance(exc, DBAPIError) else exc
        sqlstate = getattr(original, "pgcode", None)
        message = str(original).strip() or type(original).__name__
        return cls(type(original).__name__, message, sqlstate if isinstance(sqlstate, str) else None)


Message = Started | Columns | Chunk | Finished | Failed


class MessageQueue(Protocol):
    def put(self, item: Message) -> None: ...


def run(job: Job, queue: MessageQueue) -> None:
    """Run job in this process, sending every outcome, failure included, to queue."""
    # The parent decides when a download ends: Ctrl-C in a terminal reaches the whole process
    # group, and the parent then cancels and reaps its children itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stream_report(job, queue)
    except BaseException as exc:
        queue.put(Failed.from_exception(exc))


def stream_report(job: Job, queue: MessageQueue) -> None:
    engine = create_report_engine(job.database_url)
    try:
        with engine.connect() as connection:
            prepare_session(connection)
            queue.put(Started(backend_pid(connection)))
            begin_read_only(connection, job.statement_timeout_ms)

            bindings = bindable(connection, job.bindings)
            columns = describe(connection, job, bindings)
            queue.put(columns)

            rows = send_chunks(connection, job, bindings, columns, queue)
            queue.put(Finished(rows))
    finally:
        engine.dispose()


def text_clause(sql: str, list_parameters: tuple[str, ...]) -> TextClause:
    expanding = [bindparam(name, expanding=True) for name in list_parameters]
    return text(sql).bindparams(*expanding)


def backend_pid(connection: Connection) -> int | None:
    if not is_postgres(connection):
        return None
    return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def begin_read_only(connection: Connection, statement_timeout_ms: int) -> None:
    """Start the report's transaction so that the query can read but never write."""
    connection.commit()
    if is_postgres(connection):
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
    else:
        connection.exec_driver_sql("PRAGMA query_only = ON")


def describe(connection: Connection, job: Job, bindings: dict[str, Any]) -> Columns:
    """Return the result's columns without running the query to its first row.

    Wrapped in `LIMIT 0`, the query is parsed, planned and checked against the bound values, but
    no row is computed, so the CSV header can go out before a slow query produces anything.
    """
    wrapped = text_clause(f"SELECT * FROM (\n{job.sql}\n) AS report LIMIT 0", job.list_parameters)
    result = connection.execute(wrapped, bindings)
    description = result.cursor.description if result.cursor is not None else None
    result.close()
    if not description:
        raise ValueError("The report's query returns no columns: select at least one column.")
    names = tuple(column[0] for column in description)
    type_codes = tuple(column[1] for column in description)
    return Columns(names, type_codes)


def send_chunks(
    connection: Connection, job: Job, bindings: dict[str, Any], columns: Columns, queue: MessageQueue
) -> int:
    """Stream the result with a server-side cursor, putting one chunk per `chunk_rows` rows.

    `queue.put` blocks while the queue is full, so a slow client holds the child back instead of
    letting chunks pile up in memory.
    """
    streaming = connection.execution_options(stream_results=True, yield_per=job.chunk_rows)
    statement = text_clause(job.sql, job.list_parameters)
    result = streaming.execute(statement, bindings)
    raw_text = is_postgres(connection)
    rows = 0
    for partition in result.partitions(job.chunk_rows):
        if raw_text:
            kinds = postgres_kinds(columns.type_codes)
        else:
            kinds = value_kinds(list(zip(*partition, strict=True)))
        queue.put(Chunk(build_chunk(partition, len(columns.names), raw_text), kinds))
        rows += len(partition)
    return rows
