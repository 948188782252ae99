"""Prototype a PostgreSQL fast path for the download child and compare it with the current one.

Each variant runs as the service does, minus HTTP: a child process from streamer's forkserver
sends chunks through a bounded multiprocessing queue, and this process renders and counts them.

- `current`: `streamer.worker.run`, the service's own child (server-side cursor, raw text
  values, `build_chunk`), rendered with `DelimitedWriter.rows`.
- `copy+arrow`: the child runs `COPY (query) TO STDOUT WITH (FORMAT csv)` in the same session
  settings and parses the stream with `pyarrow.csv.open_csv` into string columns. An unquoted
  empty field becomes NULL and a quoted one the empty string. The child sends Arrow-backed
  DataFrames like the current child, and the parent renders them with `DelimitedWriter.rows` unchanged.
- `adbc text`: the child reads through the ADBC PostgreSQL driver, which turns COPY's binary
  format into Arrow in C++, with every column cast to text in SQL; then as `copy+arrow`.
  Unlike the current child, it does not set the transaction read-only.
- `copy passthrough`: the child sends COPY's bytes as they come, in blocks, and the parent
  counts them. This bounds any design that keeps a child and a queue.
- `copy direct`: COPY into a counting sink in this process, the reference of 1.0.

The variants run in rounds, interleaved. `--verify` first checks on a small range that
`copy+arrow` renders byte for byte what `current` renders.

Example:
    .venv/bin/python bench/fastpath.py --report-rows 1000000 --repeats 3 --verify
"""

from __future__ import annotations

import argparse
import hashlib
import os
import queue as queue_module
import statistics
import sys
import threading
import time
from collections.abc import Callable

import harness
import pandas as pd
import psycopg2
import pyarrow as pa
import pyarrow.csv as pa_csv
from harness import print_table
from throughput import measure_copy

from streamer import worker
from streamer.catalog import load_catalog
from streamer.config import DEFAULT_CHUNK_ROWS
from streamer.delimited import DelimitedWriter
from streamer.download import process_context
from streamer.kinds import Kind
from streamer.params import bind
from streamer.values import POSTGRES_SESSION

# The quoting work is the same for every kind outside Excel mode.
TEXT_KINDS = (Kind.TEXT,) * 10

# Bytes of CSV per chunk in the COPY variants. The sales report averages about 86 bytes a row,
# so 1.7 MB is close to 20 000 rows a chunk.
COPY_BLOCK_BYTES = 1_700_000
QUEUE_CHUNKS = 2


class End:
    """The last message of a prototype child. A child that fails exits without it."""

    def __init__(self, rows: int) -> None:
        self.rows = rows


def copy_into_pipe(dsn: str, sql: str, write_fd: int) -> threading.Thread:
    """Start a thread that runs COPY ... TO STDOUT in the worker's session settings into a pipe."""

    def run() -> None:
        with open(write_fd, "wb", buffering=1 << 20) as pipe:
            connection = psycopg2.connect(dsn)
            try:
                with connection.cursor() as cursor:
                    for statement in POSTGRES_SESSION:
                        cursor.execute(statement)
                    cursor.execute("SET TRANSACTION READ ONLY")
                    cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", pipe)
            finally:
                connection.close()

    thread = threading.Thread(target=run, name="copy", daemon=True)
    thread.start()
    return thread


def copy_arrow_child(dsn: str, sql: str, column_count: int, queue: object) -> None:
    """Send the query's result as Arrow-backed DataFrames of strings, parsed from COPY's CSV."""
    read_fd, write_fd = os.pipe()
    thread = copy_into_pipe(dsn, sql, write_fd)
    labels = [str(position) for position in range(column_count)]
    pipe = open(read_fd, "rb")  # noqa: SIM115 - the reader owns it until the loop below ends
    reader = pa_csv.open_csv(
        pipe,
        read_options=pa_csv.ReadOptions(column_names=labels, block_size=COPY_BLOCK_BYTES),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={label: pa.string() for label in labels},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    rows = 0
    for batch in reader:
        frame = pa.Table.from_batches([batch]).to_pandas(types_mapper=pd.ArrowDtype)
        queue.put(worker.Chunk(frame, TEXT_KINDS))
        rows += batch.num_rows
    pipe.close()
    thread.join()
    queue.put(End(rows))


def adbc_text_child(dsn: str, sql: str, column_count: int, queue: object) -> None:
    """Send the query's result as Arrow-backed DataFrames read through the ADBC PostgreSQL driver.

    ADBC reads COPY's binary format into typed Arrow columns in C++. Every column is cast to text
    in SQL, so that values keep PostgreSQL's own text output as on the current path.
    """
    import adbc_driver_postgresql.dbapi

    labels = [str(position) for position in range(column_count)]
    with adbc_driver_postgresql.dbapi.connect(dsn) as connection, connection.cursor() as cursor:
        for statement in POSTGRES_SESSION:
            cursor.execute(statement)
        cursor.execute(f"SELECT * FROM ({sql}) AS report LIMIT 0")
        names = [column[0] for column in cursor.description]
        casts = ", ".join('report."{}"::text'.format(name.replace('"', '""')) for name in names)
        cursor.execute(f"SELECT {casts} FROM ({sql}) AS report")
        rows = 0
        for batch in cursor.fetch_record_batch():
            table = pa.Table.from_batches([batch]).rename_columns(labels)
            queue.put(worker.Chunk(table.to_pandas(types_mapper=pd.ArrowDtype), TEXT_KINDS))
            rows += batch.num_rows
    queue.put(End(rows))


def copy_passthrough_child(dsn: str, sql: str, column_count: int, queue: object) -> None:
    """Send COPY's CSV bytes as they come, in blocks of about COPY_BLOCK_BYTES."""
    read_fd, write_fd = os.pipe()
    thread = copy_into_pipe(dsn, sql, write_fd)
    with open(read_fd, "rb") as pipe:
        while block := pipe.read(COPY_BLOCK_BYTES):
            queue.put(block)
    thread.join()
    queue.put(End(0))


def consume(queue: object, process: object) -> tuple[int, int]:
    """Render every chunk as the web process does; return rows and CSV bytes."""
    output = DelimitedWriter(",")
    rows = size = 0
    while True:
        try:
            message = queue.get(timeout=5)
        except queue_module.Empty:
            if not process.is_alive():
                raise RuntimeError(f"child exited with {process.exitcode} without its end message") from None
            continue
        if isinstance(message, worker.Chunk):
            rows += len(message.frame)
            size += len(output.rows(message.frame, message.kinds))
        elif isinstance(message, bytes):
            size += len(message)
        elif isinstance(message, (worker.Finished, End)):
            return rows, size
        elif isinstance(message, worker.Failed):
            raise RuntimeError(f"child failed: {message.message}")


def run_child(
    target: Callable[..., None], args: tuple, keep_bytes: bool = False
) -> tuple[float, int, int, bytes]:
    context = process_context()
    queue = context.Queue(maxsize=QUEUE_CHUNKS)
    process = context.Process(target=target, args=(*args, queue), daemon=True)
    started = time.monotonic()
    process.start()
    if keep_bytes:
        rows, size, body = collect(queue, process)
    else:
        rows, size = consume(queue, process)
        body = b""
    seconds = time.monotonic() - started
    process.join(10)
    return seconds, rows, size, body


def collect(queue: object, process: object) -> tuple[int, int, bytes]:
    """Like consume, but keep the rendered CSV for --verify."""
    output = DelimitedWriter(",")
    parts = []
    rows = 0
    while True:
        message = queue.get(timeout=60)
        if isinstance(message, worker.Chunk):
            rows += len(message.frame)
            parts.append(output.rows(message.frame, message.kinds))
        elif isinstance(message, bytes):
            parts.append(message)
        elif isinstance(message, (worker.Finished, End, worker.Failed)):
            if isinstance(message, worker.Failed):
                raise RuntimeError(message.message)
            body = b"".join(parts)
            return rows, len(body), body


def current_job(url: str, date_range: harness.DateRange, chunk_rows: int) -> worker.Job:
    report = load_catalog(harness.QUERIES).get(harness.REPORT)
    return worker.Job(
        download_id="fastpath",
        database_url=url,
        sql=report.sql.text,
        list_parameters=report.list_parameters,
        bindings=bind(report.parameters, list(date_range.query.items())),
        chunk_rows=chunk_rows,
    )


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:12]


def verify(url: str) -> None:
    """Check that every prototype sends the same bytes as the current child on a small range."""
    date_range = harness.date_range_for(url, 50_000)
    sql = harness.bound_report_sql(url, date_range)
    dsn = harness.psycopg2_dsn(url)
    _, rows_now, _, body_now = run_child(
        worker.run, (current_job(url, date_range, DEFAULT_CHUNK_ROWS),), True
    )
    candidates = (
        ("copy+arrow", copy_arrow_child),
        ("adbc text", adbc_text_child),
        ("copy passthrough", copy_passthrough_child),
    )
    for name, child in candidates:
        _, _, _, body = run_child(child, (dsn, sql, 10), True)
        same = body == body_now
        print(
            f"verify: {rows_now:,} rows, {name} bytes identical to current: {same} "
            f"(sha256 {digest(body)} vs {digest(body_now)})",
            file=sys.stderr,
            flush=True,
        )
        if not same:
            raise SystemExit(f"{name} output differs from the current path")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=harness.DEFAULT_URL, help="PostgreSQL URL (default: %(default)s)"
    )
    parser.add_argument("--report-rows", type=int, default=1_000_000, help="rows of sales per run")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="chunk rows of `current`")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the table shows medians")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="first check that every prototype sends the bytes the current path sends",
    )
    args = parser.parse_args()

    if args.verify:
        verify(args.database_url)
    date_range = harness.date_range_for(args.database_url, args.report_rows)
    sql = harness.bound_report_sql(args.database_url, date_range)
    dsn = harness.psycopg2_dsn(args.database_url)
    job = current_job(args.database_url, date_range, args.chunk_rows)

    variants: dict[str, Callable[[], float]] = {
        "copy direct": lambda: measure_copy(args.database_url, sql)[0],
        "current": lambda: run_child(worker.run, (job,))[0],
        "copy+arrow": lambda: run_child(copy_arrow_child, (dsn, sql, 10))[0],
        "adbc text": lambda: run_child(adbc_text_child, (dsn, sql, 10))[0],
        "copy passthrough": lambda: run_child(copy_passthrough_child, (dsn, sql, 10))[0],
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    run_child(
        worker.run, (current_job(args.database_url, harness.date_range_for(args.database_url, 1000), 1000),)
    )
    for round_number in range(1, args.repeats + 1):
        for name, variant in variants.items():
            seconds[name].append(variant())
        line = ", ".join(f"{name} {date_range.rows / runs[-1]:,.0f}" for name, runs in seconds.items())
        print(f"round {round_number}/{args.repeats} rows/s: {line}", file=sys.stderr, flush=True)

    copy_rate = date_range.rows / statistics.median(seconds["copy direct"])
    table = []
    for name, runs in seconds.items():
        rate = date_range.rows / statistics.median(runs)
        rates = [date_range.rows / value for value in runs]
        table.append(
            [name, f"{rate:,.0f}", f"{min(rates):,.0f}..{max(rates):,.0f}", f"{rate / copy_rate:.2f}"]
        )
    print(f"\n{date_range.rows:,} rows of sales, no HTTP, medians of {args.repeats} rounds\n")
    print_table(["path", "rows/s (median)", "rows/s (min..max)", "ratio to COPY"], table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
