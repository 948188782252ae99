"""Sample a real download with py-spy and split the busy samples by process and step.

Starts `streamer serve`, downloads once to start the forkserver, then runs
`py-spy record --subprocesses --nonblocking --format raw` on the server's process tree while this
process downloads the sales report over HTTP. Each busy sample (py-spy leaves out idle threads)
goes to the first step that its stack, read from the innermost frame out, belongs to.
The raw collapsed stacks are kept for a flame graph.

Needs py-spy (the `bench` extra) and permission to ptrace the server, which root has.

Example:
    .venv/bin/python bench/pyspy_profile.py --report-rows 1000000 --output /tmp/streamer.raw
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import harness
from harness import print_table
from throughput import warm_up

from streamer.config import DEFAULT_CHUNK_ROWS

# (step, substrings of a frame "function (file)"), tried on each frame from the innermost out.
# The first frame that matches any step decides the sample.
STEPS = (
    ("pickle (child)", ("dumps (multiprocessing/reduction.py)",)),
    (
        "queue pipe read/write",
        ("_send_bytes (", "_recv_bytes (", "_send (multiprocessing", "_recv (multiprocessing"),
    ),
    # Queue.get unpickles in C right after reading the pipe, so a busy Queue.get frame with no
    # pipe frame inside it is unpickling.
    ("unpickle (web)", ("Queue.get (multiprocessing/queues.py)",)),
    ("build_chunk (child)", ("build_chunk (streamer/values.py)",)),
    (
        "fetch from PostgreSQL (child)",
        ("fetchmany", "(sqlalchemy/engine/cursor.py)", "(sqlalchemy/engine/result.py)"),
    ),
    ("CSV rendering (web)", ("(streamer/formats.py)",)),
    ("HTTP send: uvicorn and asyncio (web)", ("(uvicorn/", "(asyncio/", "(starlette/", "(anyio/", "(h11/")),
    ("child setup: imports, connection, LIMIT 0 query", ("(sqlalchemy/", "(<frozen importlib", "(psycopg2/")),
    # The loop of send_chunks itself, outside any call py-spy can see.
    ("worker loop (child)", ("(streamer/worker.py)", "(multiprocessing/forkserver.py)")),
)


def classify(frames: list[str]) -> str:
    for frame in reversed(frames):
        for step, patterns in STEPS:
            if any(pattern in frame for pattern in patterns):
                return step
    return "other"


def summarize(raw_path: Path) -> Counter[tuple[str, str]]:
    """Return busy samples counted by (process role, step) from py-spy's raw output."""
    counts: Counter[tuple[str, str]] = Counter()
    for line in raw_path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack:
            continue
        # With --subprocesses, a stack starts with one frame per process from the server down:
        # one for the web process, two for the forkserver, three for a download child.
        frames = stack.split(";")
        depth = sum(frame.startswith("process ") for frame in frames)
        role = {1: "web", 2: "forkserver"}.get(depth, "child")
        counts[(role, classify(frames[depth:]))] += int(number)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=harness.DEFAULT_URL, help="PostgreSQL URL (default: %(default)s)"
    )
    parser.add_argument("--report-rows", type=int, default=1_000_000, help="rows of sales to download")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="STREAMER_CHUNK_ROWS")
    parser.add_argument("--output", type=Path, help="keep py-spy's collapsed stacks in this file")
    parser.add_argument(
        "--from-raw", type=Path, help="only summarize collapsed stacks kept by an earlier run"
    )
    args = parser.parse_args()
    if args.from_raw:
        print_summary(summarize(args.from_raw))
        return 0

    date_range = harness.date_range_for(args.database_url, args.report_rows)
    log_dir = Path(tempfile.mkdtemp(prefix="streamer-bench-"))
    raw_path = args.output or log_dir / "py-spy.raw"
    py_spy = Path(sys.executable).with_name("py-spy")

    server = harness.start_server(args.database_url, args.chunk_rows, log_dir)
    try:
        warm_up(server, args.database_url)
        spy = subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--subprocesses",
                "--nonblocking",
                "--format",
                "raw",
                "--nolineno",
                "--rate",
                "100",
                "--pid",
                str(server.process.pid),
                "--output",
                str(raw_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # lets py-spy attach to the server; it finds the download child by polling
        result = harness.download(server.base_url, date_range)
        spy.send_signal(signal.SIGINT)
        _, errors = spy.communicate(timeout=60)
        if not raw_path.exists():
            raise RuntimeError(f"py-spy wrote no output: {errors.decode(errors='replace')}")
    finally:
        harness.stop_server(server)

    rate = f"{result.rows_per_second:,.0f} rows/s while sampled"
    print(f"\n{result.rows:,} rows in {result.seconds:.1f} s ({rate})")
    print_summary(summarize(raw_path))
    print(f"\ncollapsed stacks: {raw_path}", file=sys.stderr)
    return 0


def print_summary(counts: Counter[tuple[str, str]]) -> None:
    total = sum(counts.values())
    table = [
        [role, step, str(samples), f"{100 * samples / total:.0f} %"]
        for (role, step), samples in sorted(counts.items(), key=lambda item: (item[0][0], -item[1]))
    ]
    print()
    print_table(["process", "step", "busy samples", "share of busy samples"], table)


if __name__ == "__main__":
    sys.exit(main())
