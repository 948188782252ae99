"""Split the service's cost per row into its steps, on real chunks of the sales report.

Runs, in this one process and one step after another, what a download does across two:

- child: fetch rows through SQLAlchemy's server-side cursor in the session the worker sets up
  (this includes the time PostgreSQL takes to run the query), `streamer.values.build_chunk`, and
  pickling the `Chunk` as multiprocessing's queue does;
- parent: unpickling, and `streamer.delimited.DelimitedWriter.rows`.

Sending through uvicorn is not in here; profile the server with py-spy for that (see
docs/benchmarks.md). Prints microseconds per row for each step, and with `--cprofile` the top
functions of a cProfile run as well.

Example:
    .venv/bin/python bench/profile_chunks.py --report-rows 500000 --chunk-rows 20000
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from multiprocessing.reduction import ForkingPickler

import harness
from harness import print_table

from streamer import worker
from streamer.catalog import load_catalog
from streamer.config import DEFAULT_CHUNK_ROWS
from streamer.database import create_report_engine
from streamer.delimited import DelimitedWriter
from streamer.kinds import Kind
from streamer.params import bind
from streamer.values import build_chunk, prepare_session

STEPS = ("fetch", "build_chunk", "pickle", "unpickle", "render")


def partitions(url: str, date_range: harness.DateRange, chunk_rows: int) -> Iterator[list]:
    """Yield the sales report's rows in chunks exactly as streamer.worker reads them."""
    report = load_catalog(harness.QUERIES).get(harness.REPORT)
    job = worker.Job(
        download_id="profile",
        database_url=url,
        sql=report.sql.text,
        list_parameters=report.list_parameters,
        bindings=bind(report.parameters, list(date_range.query.items())),
        chunk_rows=chunk_rows,
    )
    engine = create_report_engine(url)
    try:
        with engine.connect() as connection:
            prepare_session(connection)
            worker.begin_read_only(connection, 0, worker.ChildState())
            streaming = connection.execution_options(stream_results=True, yield_per=chunk_rows)
            result = streaming.execute(worker.text_clause(job.sql, job.list_parameters), job.bindings)
            yield from result.partitions(chunk_rows)
    finally:
        engine.dispose()


def run_pipeline(
    url: str, date_range: harness.DateRange, chunk_rows: int
) -> tuple[dict[str, float], int, int]:
    """Return seconds spent in each step, rows and CSV bytes, over the whole range."""
    seconds: dict[str, float] = defaultdict(float)
    output = DelimitedWriter(",")
    kinds = [Kind.TEXT] * 10  # the quoting work is the same for every kind outside Excel mode
    rows = size = 0
    source = partitions(url, date_range, chunk_rows)
    while True:
        started = time.perf_counter()
        partition = next(source, None)
        seconds["fetch"] += time.perf_counter() - started
        if partition is None:
            break

        started = time.perf_counter()
        frame = build_chunk(partition, 10, raw_text=True)
        seconds["build_chunk"] += time.perf_counter() - started

        started = time.perf_counter()
        payload = bytes(ForkingPickler.dumps(worker.Chunk(frame, tuple(kinds))))
        seconds["pickle"] += time.perf_counter() - started

        started = time.perf_counter()
        received = ForkingPickler.loads(payload)
        seconds["unpickle"] += time.perf_counter() - started

        started = time.perf_counter()
        size += len(output.rows(received.frame, received.kinds))
        seconds["render"] += time.perf_counter() - started
        rows += len(partition)
    return dict(seconds), rows, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=harness.DEFAULT_URL, help="PostgreSQL URL (default: %(default)s)"
    )
    parser.add_argument("--report-rows", type=int, default=500_000, help="rows of sales to read")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows per chunk")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the table shows medians")
    parser.add_argument("--cprofile", action="store_true", help="also print cProfile's top functions")
    args = parser.parse_args()

    date_range = harness.date_range_for(args.database_url, args.report_rows)
    runs = []
    for _ in range(args.repeats):
        runs.append(run_pipeline(args.database_url, date_range, args.chunk_rows))
    rows = runs[0][1]

    def median_step(step: str) -> float:
        values = sorted(run[0][step] for run in runs)
        return values[len(values) // 2]

    total = sum(median_step(step) for step in STEPS)
    table = []
    for step in STEPS:
        step_seconds = median_step(step)
        side = "child" if step in ("fetch", "build_chunk", "pickle") else "parent"
        table.append(
            [
                side,
                step,
                f"{1e6 * step_seconds / rows:.2f}",
                f"{100 * step_seconds / total:.0f} %",
                f"{rows / step_seconds:,.0f}",
            ]
        )
    child = sum(median_step(step) for step in ("fetch", "build_chunk", "pickle"))
    parent = sum(median_step(step) for step in ("unpickle", "render"))
    table.append(
        ["child", "all", f"{1e6 * child / rows:.2f}", f"{100 * child / total:.0f} %", f"{rows / child:,.0f}"]
    )
    table.append(
        [
            "parent",
            "all",
            f"{1e6 * parent / rows:.2f}",
            f"{100 * parent / total:.0f} %",
            f"{rows / parent:,.0f}",
        ]
    )
    print(f"\n{rows:,} rows of sales, chunk rows {args.chunk_rows}, medians of {args.repeats} runs\n")
    print_table(["process", "step", "µs per row", "share", "rows/s if alone"], table)

    if args.cprofile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_pipeline(args.database_url, date_range, args.chunk_rows)
        profiler.disable()
        print()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
