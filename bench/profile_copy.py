"""Split the cost per row of the COPY read path into its steps, on real chunks of the sales report.

Runs, in this one process and one step after another, what a download does across two:

- copy: `COPY (query) TO STDOUT` into a sink that only counts rows (PostgreSQL's work plus the
  driver's, the ceiling for the steps below);
- copy+parse: the same COPY through `streamer.pgcopy.ChunkWriter`, which parses each chunk with
  Arrow into a DataFrame (all of the child's work);
- pickle and unpickle: a `Chunk` through the pickler multiprocessing's queue uses;
- render: `DelimitedWriter.rows`, the CSV the web process sends.

Prints wall and CPU microseconds per row for each step, medians of the rounds. Sending through
uvicorn is not in here.

Example:
    .venv/bin/python bench/profile_copy.py --report-rows 1000000 --chunk-rows 10000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import Any

import harness
from harness import print_table

from streamer import worker
from streamer.catalog import load_catalog
from streamer.config import DEFAULT_CHUNK_ROWS
from streamer.database import create_report_engine
from streamer.delimited import DelimitedWriter
from streamer.kinds import postgres_kinds
from streamer.params import bind
from streamer.pgcopy import ChunkWriter, copy_statement
from streamer.values import prepare_session

STEPS = ("copy", "copy+parse", "pickle", "unpickle", "render")


class RowCounter:
    """A COPY sink that keeps nothing, to time PostgreSQL and the driver alone."""

    def __init__(self) -> None:
        self.rows = 0

    def write(self, line: bytes) -> None:
        self.rows += 1


def timed(step: Callable[[], Any]) -> tuple[Any, tuple[float, float]]:
    """Run step; return its result and the wall and CPU seconds this process spent on it."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, (time.perf_counter() - wall, time.process_time() - cpu)


def run_round(url: str, date_range: harness.DateRange, chunk_rows: int) -> dict[str, tuple[float, float]]:
    """Return wall and CPU seconds per row of each step, for one pass over the report."""
    report = load_catalog(harness.QUERIES).get(harness.REPORT)
    bindings = bind(report.parameters, list(date_range.query.items()))
    statement = worker.text_clause(report.sql.text, report.list_parameters)
    seconds: dict[str, tuple[float, float]] = {}
    engine = create_report_engine(url)
    try:
        with engine.connect() as connection:
            prepare_session(connection)
            type_codes = report_columns(connection, statement, report.list_parameters, bindings)
            sql = copy_statement(connection, statement, bindings)
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

            counter = RowCounter()
            _, seconds["copy"] = timed(lambda: cursor.copy_expert(sql, counter))

            frames: list[Any] = []
            chunks = ChunkWriter(len(type_codes), chunk_rows, frames.append)
            _, seconds["copy+parse"] = timed(lambda: (cursor.copy_expert(sql, chunks), chunks.flush()))
    finally:
        engine.dispose()

    kinds = postgres_kinds(type_codes)
    writer = DelimitedWriter(",")
    messages = [worker.Chunk(frame, kinds) for frame in frames]
    blobs, seconds["pickle"] = timed(lambda: [bytes(ForkingPickler.dumps(m)) for m in messages])
    received, seconds["unpickle"] = timed(lambda: [ForkingPickler.loads(blob) for blob in blobs])
    _, seconds["render"] = timed(lambda: [writer.rows(m.frame, m.kinds) for m in received])
    return {step: (wall / counter.rows, cpu / counter.rows) for step, (wall, cpu) in seconds.items()}


def report_columns(
    connection: Any, statement: Any, list_parameters: tuple[str, ...], bindings: dict[str, Any]
) -> tuple[Any, ...]:
    """Return the type codes of the report's columns, as the child learns them."""
    wrapped = worker.text_clause(f"SELECT * FROM (\n{statement.text}\n) AS report LIMIT 0", list_parameters)
    result = connection.execute(wrapped, bindings)
    type_codes = tuple(column[1] for column in result.cursor.description)
    result.close()
    return type_codes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=harness.DEFAULT_URL, help="PostgreSQL URL")
    parser.add_argument("--report-rows", type=int, default=1_000_000, help="rows of sales to read")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows per chunk")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the table shows medians")
    args = parser.parse_args()

    date_range = harness.date_range_for(args.database_url, args.report_rows)
    rounds = [run_round(args.database_url, date_range, args.chunk_rows) for _ in range(args.repeats)]
    rows = []
    for step in STEPS:
        wall = statistics.median(r[step][0] for r in rounds) * 1e6
        cpu = statistics.median(r[step][1] for r in rounds) * 1e6
        rows.append([step, f"{wall:.2f}", f"{cpu:.2f}", f"{1e6 / wall:,.0f}"])
    print(
        f"{args.report_rows:,} rows of {harness.REPORT}, {args.chunk_rows} rows a chunk, medians of {args.repeats}"
    )
    print_table(["step", "wall µs/row", "CPU µs/row", "rows/s alone"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
