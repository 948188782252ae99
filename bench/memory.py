"""Check that the service's memory stays flat as a download grows.

Downloads the `sales` report over ranges of increasing size from one `streamer serve`, at the
default chunk size unless `--chunk-rows` is given. For each size it prints the peak PSS of the
server's process tree (web process, forkserver and download child), of the web process alone and
of the child alone. The sizes run in rounds, so that noise from other processes hits each alike.

Example:
    .venv/bin/python bench/memory.py --report-rows 1000000,4000000 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import harness
from harness import PSSSampler, mib, print_table
from throughput import int_list, warm_up

from streamer.config import DEFAULT_CHUNK_ROWS


def measure(server: harness.Server, date_range: harness.DateRange) -> dict[str, float]:
    baseline = harness.current_tree_pss(server.process.pid)
    with PSSSampler(server.process.pid) as sampler:
        result = harness.download(server.base_url, date_range, timeout=1800)
    if result.rows != date_range.rows:
        raise RuntimeError(f"downloaded {result.rows} rows, expected {date_range.rows}")
    return {
        "rows": result.rows,
        "seconds": result.seconds,
        "rows_per_second": result.rows_per_second,
        "max_gap": result.max_gap,
        "baseline_pss": baseline,
        "peak_pss": sampler.peak_total,
        "peak_web_pss": sampler.peak_web,
        "peak_child_pss": sampler.peak_child,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_dataset_arguments(parser)
    parser.add_argument(
        "--report-rows",
        type=int_list,
        default=[1_000_000, 4_000_000],
        help="comma-separated rows per download (default: %(default)s)",
    )
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="STREAMER_CHUNK_ROWS")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all sizes (default: 2)")
    parser.add_argument("--output", type=Path, help="write all raw figures to this JSON file")
    args = parser.parse_args()

    harness.ensure_dataset(args.database_url, args.rows)
    ranges = [harness.date_range_for(args.database_url, rows) for rows in args.report_rows]
    log_dir = Path(tempfile.mkdtemp(prefix="streamer-bench-"))
    results: dict[int, list[dict[str, float]]] = {date_range.rows: [] for date_range in ranges}

    server = harness.start_server(args.database_url, args.chunk_rows, log_dir)
    try:
        warm_up(server, args.database_url)
        for round_number in range(1, args.repeats + 1):
            for date_range in ranges:
                figures = measure(server, date_range)
                results[date_range.rows].append(figures)
                print(
                    f"round {round_number}/{args.repeats}: {date_range.rows:,} rows, "
                    f"peak PSS {mib(figures['peak_pss']):.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        harness.stop_server(server)

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    smallest = min(results)
    table = []
    for rows, runs in results.items():
        peak = median(runs, "peak_pss")
        table.append(
            [
                f"{rows:,}",
                f"{median(runs, 'rows_per_second'):,.0f}",
                f"{mib(median(runs, 'baseline_pss')):.0f}",
                f"{mib(peak):.0f}",
                f"{mib(max(run['peak_pss'] for run in runs)):.0f}",
                f"{mib(median(runs, 'peak_web_pss')):.0f}",
                f"{mib(median(runs, 'peak_child_pss')):.0f}",
                f"{100 * (peak / median(results[smallest], 'peak_pss') - 1):+.1f} %",
            ]
        )
    print(f"\nchunk rows {args.chunk_rows}, medians of {args.repeats} rounds\n")
    print_table(
        [
            "rows",
            "rows/s",
            "idle PSS MiB",
            "peak PSS MiB",
            "worst peak MiB",
            "peak web MiB",
            "peak child MiB",
            f"peak vs {smallest:,} rows",
        ],
        table,
    )
    if args.output:
        args.output.write_text(json.dumps({str(rows): runs for rows, runs in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
