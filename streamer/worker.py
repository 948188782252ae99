"""The child process of one download: run the report's query and send its result in chunks.

Everything that crosses to the parent is a plain dataclass that always pickles: driver
exceptions do not always pickle, and a queue drops what fails to pickle without a word.
"""

from __future__ import annotations

import functools
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import BindParameter, TextClause

from streamer.database import create_report_engine
from streamer.kinds import Kind, postgres_kinds, value_kinds
from streamer.pgcopy import send_chunks_by_copy
from streamer.values import bindable, build_chunk, is_postgres, prepare_session


@dataclass(frozen=True)
class Job:
    """The query, values and settings of one download, sent to its child."""

    download_id: str
    database_url: str
    sql: str
    list_parameters: tuple[str, ...]
    bindings: dict[str, Any]
    chunk_rows: int
    statement_timeout_ms: int = 0
    postgres_copy: bool = True
    """On PostgreSQL, read with COPY (streamer.pgcopy) instead of a server-side cursor."""


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
    connecting: bool = False
    """True when the child failed before its database connection was ready."""

    @classmethod
    def from_exception(cls, exc: BaseException, connecting: bool = False) -> Failed:
        original = exc.orig if isinstance(exc, DBAPIError) else exc
        sqlstate = getattr(original, "pgcode", None)
        message = str(original).strip() or type(original).__name__
        return cls(
            type(original).__name__, message, sqlstate if isinstance(sqlstate, str) else None, connecting
        )


@dataclass
class ChildState:
    """The stage the child has reached, so that a failure reports where it happened."""

    connecting: bool = True
    timed_out: bool = False

    def failure(self, exc: BaseException) -> Failed:
        if self.timed_out:
            return Failed("QueryTimeout", "canceling statement due to statement timeout", "57014")
        return Failed.from_exception(exc, connecting=self.connecting)


Message = Started | Columns | Chunk | Finished | Failed


class MessageQueue(Protocol):
    def put(self, item: Message) -> None: ...


def run(job: Job, queue: MessageQueue) -> None:
    """Run job in this process, sending every outcome, failure included, to queue."""
    # The parent decides when a download ends. Ctrl-C in a terminal and a platform's SIGTERM
    # (Heroku signals every process of a dyno) reach the children too. The parent lets running
    # downloads finish, then cancels and kills its children itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    state = ChildState()
    try:
        stream_report(job, queue, state)
    except BaseException as exc:  # every failure must reach the parent as data
        queue.put(state.failure(exc))


def stream_report(job: Job, queue: MessageQueue, state: ChildState) -> None:
    engine = create_report_engine(job.database_url)
    try:
        with engine.connect() as connection:
            prepare_session(connection)
            state.connecting = False
            queue.put(Started(backend_pid(connection, job.download_id)))
            begin_read_only(connection, job.statement_timeout_ms, state)

            bindings = bindable(connection, job.bindings)
            columns = describe(connection, job, bindings)
            queue.put(columns)

            rows = send_chunks(connection, job, bindings, columns, queue)
            queue.put(Finished(rows))
    finally:
        engine.dispose()


def text_clause(sql: str, list_parameters: tuple[str, ...]) -> TextClause:
    expanding: list[BindParameter[Any]] = [bindparam(name, expanding=True) for name in list_parameters]
    return text(sql).bindparams(*expanding)


def backend_pid(connection: Connection, download_id: str) -> int | None:
    """Return the PostgreSQL server process of this connection, named after the download.

    The name shows in pg_stat_activity's application_name as `streamer DOWNLOAD_ID`, the id the
    logs and the X-Download-Id header carry.
    """
    if not is_postgres(connection):
        return None
    named = text("SELECT pg_backend_pid(), set_config('application_name', :name, false)")
    pid, _ = connection.execute(named, {"name": f"streamer {download_id}"}).one()
    return int(pid)


def begin_read_only(connection: Connection, statement_timeout_ms: int, state: ChildState) -> None:
    """Start the report's transaction so that the query can read but never write, with a timeout.

    On PostgreSQL the timeout is statement_timeout, so it bounds each statement: planning, and
    every fetch of a chunk. On SQLite a progress handler interrupts the query once the whole
    download has run that long.
    """
    connection.commit()
    if is_postgres(connection):
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        return
    connection.exec_driver_sql("PRAGMA query_only = ON")
    if statement_timeout_ms > 0:
        deadline = time.monotonic() + statement_timeout_ms / 1000
        handler = functools.partial(interrupt_after, deadline, state)
        connection.connection.dbapi_connection.set_progress_handler(handler, 10_000)  # type: ignore[union-attr]


def interrupt_after(deadline: float, state: ChildState) -> int:
    """Return non-zero, which makes SQLite interrupt the query, once deadline has passed."""
    if time.monotonic() > deadline:
        state.timed_out = True
        return 1
    return 0


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
    statement = text_clause(job.sql, job.list_parameters)
    if job.postgres_copy and is_postgres(connection):
        kinds = postgres_kinds(columns.type_codes)

        def send(frame: pd.DataFrame) -> None:
            queue.put(Chunk(frame, kinds))

        return send_chunks_by_copy(connection, statement, bindings, len(columns.names), job.chunk_rows, send)

    streaming = connection.execution_options(stream_results=True, yield_per=job.chunk_rows)
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
