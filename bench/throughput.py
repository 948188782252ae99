"""Measure the sales report's CSV throughput: COPY, the thread workaround, and the service.

One run loads the demo dataset if needed, picks a date range of the `sales` report holding the
requested rows, and measures, interleaved in rounds so that load from other processes on the
machine hits every variant alike:

- `copy`: `COPY (bound report query) TO STDOUT WITH (FORMAT csv, HEADER)` via psycopg2's
  copy_expert into a sink that counts bytes; the upper bound for any client in Python.
- `workaround`: a thread writing csv.writer rows from a server-side (named) psycopg2 cursor.
- `service <chunk rows>`: `streamer serve`, one subprocess per chunk size, downloaded with
  httpx. It also reports time to first byte, the maximum gap between received bytes, and the
  peak PSS of the server's process tree.

Then, unless `--concurrency` is empty, N simultaneous downloads from the default-chunk server,
with /healthz probed every 0.2 s meanwhile.

Example:
    .venv/bin/python bench/throughput.py --rows 4000000 --report-rows 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import harness
import httpx
import psycopg2
from harness import DateRange, PSSSampler, Series, mib, print_table

SERVER_SIDE_ITERSIZE = 20_000


class CountingSink:
    """A file-like object that counts what is written to it and keeps nothing."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes | str) -> int:
        self.bytes += len(data)
        return len(data)


def measure_copy(url: str, sql: str) -> tuple[float, int]:
    """Return seconds and bytes for the report through COPY ... TO STDOUT."""
    figures = measure_copy_cpu(url, sql)
    return figures["seconds"], int(figures["bytes"])


def measure_copy_cpu(url: str, sql: str) -> dict[str, float]:
    """Return seconds, bytes and CPU seconds (this process, PostgreSQL backend) of COPY."""
    sink = CountingSink()
    with psycopg2.connect(harness.psycopg2_dsn(url)) as connection, connection.cursor() as cursor:
        backend = connection.get_backend_pid()
        backend_cpu = harness.process_cpu_seconds(backend)
        client_cpu = time.process_time()
        started = time.monotonic()
        cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)", sink)
        return {
            "seconds": time.monotonic() - started,
            "bytes": sink.bytes,
            "client_cpu": time.process_time() - client_cpu,
            "backend_cpu": harness.process_cpu_seconds(backend) - backend_cpu,
        }


def measure_workaround(url: str, sql: str) -> dict[str, float]:
    """Return seconds, bytes and CPU seconds for csv.writer over a named cursor, run in a thread.

    This is the usual hand-written export: psycopg2 converts each value to a Python object
    (datetime, Decimal, int) and csv.writer turns it back into text.
    """
    sink = CountingSink()
    backend_cpu: list[float] = []

    def export() -> None:
        with psycopg2.connect(harness.psycopg2_dsn(url)) as connection:
            backend = connection.get_backend_pid()
            backend_cpu.append(harness.process_cpu_seconds(backend))
            with connection.cursor(name="bench_export") as cursor:
                cursor.itersize = SERVER_SIDE_ITERSIZE
                cursor.execute(sql)
                writer = csv.writer(sink, lineterminator="\n")
                first = cursor.fetchmany(1)
                writer.writerow([column.name for column in cursor.description])
                writer.writerows(first)
                writer.writerows(cursor)
            backend_cpu.append(harness.process_cpu_seconds(backend))

    client_cpu = time.process_time()
    started = time.monotonic()
    thread = threading.Thread(target=export, name="workaround")
    thread.start()
    thread.join()
    return {
        "seconds": time.monotonic() - started,
        "bytes": sink.bytes,
        "client_cpu": time.process_time() - client_cpu,
        "backend_cpu": backend_cpu[1] - backend_cpu[0],
    }


def measure_service(server: harness.Server, date_range: DateRange) -> dict[str, float]:
    baseline = harness.current_tree_pss(server.process.pid)
    cpu = harness.tree_cpu_seconds(server.process.pid)
    with PSSSampler(server.process.pid) as sampler:
        result = harness.download(server.base_url, date_range)
    harness.wait_for_children_reaped(server.process.pid, expected=1)
    cpu = harness.tree_cpu_seconds(server.process.pid) - cpu
    if result.rows != date_range.rows:
        raise RuntimeError(f"downloaded {result.rows} rows, expected {date_range.rows}")
    return {
        "seconds": result.seconds,
        "rows_per_second": result.rows_per_second,
        "client_cpu": cpu,
        "time_to_headers": result.time_to_headers,
        "ttfb": result.ttfb,
        "max_gap": result.max_gap,
        "bytes": result.bytes,
        "heartbeats": result.heartbeats,
        "baseline_pss": baseline,
        "peak_pss": sampler.peak_total,
        "peak_web_pss": sampler.peak_web,
        "peak_child_pss": sampler.peak_child,
    }


def warm_up(server: harness.Server, url: str) -> None:
    """Download a small range once, so the forkserver has started and imported pandas.

    The first download after startup also starts the forkserver, which took about 2 s on the
    benchmark machine. That cost comes once per server process, not once per download.
    """
    harness.download(server.base_url, harness.date_range_for(url, 1000))


def run_rounds(
    url: str, date_range: DateRange, servers: dict[int, harness.Server], repeats: int
) -> dict[str, list[dict[str, float]]]:
    sql = harness.bound_report_sql(url, date_range)
    results: dict[str, list[dict[str, float]]] = {"copy": [], "workaround": []}
    for chunk_rows in servers:
        results[f"service {chunk_rows}"] = []

    for round_number in range(1, repeats + 1):
        for name, measure in (("copy", measure_copy_cpu), ("workaround", measure_workaround)):
            figures = measure(url, sql)
            figures["rows_per_second"] = date_range.rows / figures["seconds"]
            results[name].append(figures)
        # Rotate the order of the servers each round, so no chunk size always runs last.
        order = list(servers.items())
        shift = (round_number - 1) % len(order)
        for chunk_rows, server in order[shift:] + order[:shift]:
            results[f"service {chunk_rows}"].append(measure_service(server, date_range))
        line = ", ".join(f"{name} {runs[-1]['rows_per_second']:,.0f}" for name, runs in results.items())
        print(f"round {round_number}/{repeats} rows/s: {line}", file=sys.stderr, flush=True)
    return results


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def print_rounds(results: dict[str, list[dict[str, float]]], rows: int) -> None:
    copy_rate = median_of(results["copy"], "rows_per_second")
    table = []
    for name, runs in results.items():
        rates = Series([run["rows_per_second"] for run in runs])
        row = [name, f"{rates.median:,.0f}", rates.spread(), f"{rates.median / copy_rate:.2f}"]
        row.append(f"{1e6 * median_of(runs, 'client_cpu') / rows:.2f}")
        backend = f"{1e6 * median_of(runs, 'backend_cpu') / rows:.2f}" if "backend_cpu" in runs[0] else ""
        row.append(backend)
        if name.startswith("service"):
            row += [
                f"{median_of(runs, 'ttfb'):.2f}",
                f"{max(run['max_gap'] for run in runs):.2f}",
                f"{mib(median_of(runs, 'baseline_pss')):.0f}",
                f"{mib(median_of(runs, 'peak_pss')):.0f}",
                f"{mib(median_of(runs, 'peak_web_pss')):.0f}",
                f"{mib(median_of(runs, 'peak_child_pss')):.0f}",
            ]
        else:
            row += ["", "", "", "", "", ""]
        table.append(row)
    print_table(
        [
            "method",
            "rows/s (median)",
            "rows/s (min..max)",
            "ratio to COPY",
            "Python CPU µs/row",
            "PG backend CPU µs/row",
            "TTFB s",
            "max gap s",
            "idle PSS MiB",
            "peak PSS MiB",
            "peak web MiB",
            "peak child MiB",
        ],
        table,
    )


def concurrent_downloads(server: harness.Server, date_range: DateRange, count: int) -> dict[str, object]:
    """Run count downloads at once while probing /healthz, and return their figures."""
    results: list[harness.DownloadResult | BaseException] = [None] * count  # type: ignore[list-item]
    health_latencies: list[float] = []
    stop_probing = threading.Event()

    def fetch(index: int) -> None:
        try:
            results[index] = harness.download(server.base_url, date_range)
        except BaseException as exc:
            results[index] = exc

    def probe() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop_probing.wait(0.2):
                started = time.monotonic()
                client.get(f"{server.base_url}/healthz").raise_for_status()
                health_latencies.append(time.monotonic() - started)

    threads = [threading.Thread(target=fetch, args=(index,)) for index in range(count)]
    prober = threading.Thread(target=probe, name="healthz-probe")
    started = time.monotonic()
    with PSSSampler(server.process.pid) as sampler:
        prober.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stop_probing.set()
        prober.join()
    wall = time.monotonic() - started

    failures = [repr(result) for result in results if isinstance(result, BaseException)]
    if failures:
        raise RuntimeError(f"{len(failures)} of {count} downloads failed: {failures[0]}")
    downloads = [result for result in results if isinstance(result, harness.DownloadResult)]
    return {
        "downloads": count,
        "wall_seconds": wall,
        "total_rows_per_second": sum(result.rows for result in downloads) / wall,
        "per_download_rows_per_second": [result.rows_per_second for result in downloads],
        "time_to_headers": [result.time_to_headers for result in downloads],
        "ttfb": [result.ttfb for result in downloads],
        "max_gap": [result.max_gap for result in downloads],
        "peak_pss": sampler.peak_total,
        "healthz_median": statistics.median(health_latencies) if health_latencies else None,
        "healthz_max": max(health_latencies) if health_latencies else None,
        "healthz_over_100ms": sum(latency > 0.1 for latency in health_latencies),
        "healthz_probes": len(health_latencies),
    }


def run_concurrency(
    server: harness.Server, date_range: DateRange, counts: list[int], repeats: int
) -> list[dict[str, object]]:
    runs = []
    for round_number in range(1, repeats + 1):
        for count in counts:
            figures = concurrent_downloads(server, date_range, count)
            figures["round"] = round_number
            runs.append(figures)
            print(
                f"round {round_number}/{repeats}: {count} downloads, "
                f"{figures['total_rows_per_second']:,.0f} rows/s in total",
                file=sys.stderr,
                flush=True,
            )
    return runs


def print_concurrency(runs: list[dict[str, object]], counts: list[int]) -> None:
    table = []
    for count in counts:
        mine = [run for run in runs if run["downloads"] == count]
        table.append(
            [
                str(count),
                f"{statistics.median(run['total_rows_per_second'] for run in mine):,.0f}",
                f"{statistics.median(min(run['per_download_rows_per_second']) for run in mine):,.0f}",
                f"{max(max(run['time_to_headers']) for run in mine):.2f}",
                f"{max(max(run['ttfb']) for run in mine):.2f}",
                f"{max(max(run['max_gap']) for run in mine):.2f}",
                f"{mib(statistics.median(run['peak_pss'] for run in mine)):.0f}",
                f"{1000 * statistics.median(run['healthz_median'] for run in mine):.1f}",
                f"{1000 * max(run['healthz_max'] for run in mine):.1f}",
                f"{sum(run['healthz_over_100ms'] for run in mine)} of "
                f"{sum(run['healthz_probes'] for run in mine)}",
            ]
        )
    print_table(
        [
            "downloads",
            "total rows/s",
            "slowest download rows/s",
            "max time to headers s",
            "max TTFB s",
            "max gap s",
            "peak PSS MiB",
            "/healthz median ms",
            "/healthz max ms",
            "/healthz > 100 ms",
        ],
        table,
    )


def int_list(raw: str) -> list[int]:
    return [int(item.replace("_", "")) for item in raw.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_dataset_arguments(parser)
    parser.add_argument(
        "--report-rows", type=int, default=1_000_000, help="rows per download (rounded up to whole days)"
    )
    parser.add_argument(
        "--chunk-rows",
        type=int_list,
        default=[1000, 5000, 20000, 50000, 100000],
        help="comma-separated STREAMER_CHUNK_ROWS values, one server each (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=int_list,
        default=[1, 2, 4],
        help="comma-separated numbers of simultaneous downloads; empty to skip (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency-chunk-rows", type=int, default=20_000, help="chunk rows of the concurrency server"
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every measurement (default: 3)")
    parser.add_argument("--output", type=Path, help="write all raw figures to this JSON file")
    return parser


def main() -> int:
    args = build_parser().parse_args()
    harness.ensure_dataset(args.database_url, args.rows)
    date_range = harness.date_range_for(args.database_url, args.report_rows)
    print(
        f"sales {date_range.from_date} to {date_range.to_date}: {date_range.rows:,} rows",
        file=sys.stderr,
        flush=True,
    )
    log_dir = Path(tempfile.mkdtemp(prefix="streamer-bench-"))
    chunk_sizes = sorted(
        set(args.chunk_rows) | ({args.concurrency_chunk_rows} if args.concurrency else set())
    )
    output: dict[str, object] = {"date_range": asdict(date_range) | {"rows": date_range.rows}}

    with harness.running_servers(args.database_url, chunk_sizes, log_dir) as servers:
        for server in servers.values():
            warm_up(server, args.database_url)
        swept = {chunk_rows: servers[chunk_rows] for chunk_rows in args.chunk_rows}
        rounds = run_rounds(args.database_url, date_range, swept, args.repeats)
        output["rounds"] = rounds
        print(f"\n{date_range.rows:,} rows of sales per download, medians of {args.repeats} rounds\n")
        print_rounds(rounds, date_range.rows)

        if args.concurrency:
            server = servers[args.concurrency_chunk_rows]
            runs = run_concurrency(server, date_range, args.concurrency, args.repeats)
            output["concurrency"] = runs
            print(f"\nsimultaneous downloads, chunk rows {args.concurrency_chunk_rows}\n")
            print_concurrency(runs, args.concurrency)

    if args.output:
        args.output.write_text(json.dumps(output, indent=2, default=str))
    print(f"\nserver logs: {log_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
