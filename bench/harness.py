"""Pieces shared by the benchmark scripts: dataset, bound report SQL, server, client, memory.

Everything here talks only to loopback: the PostgreSQL given by URL and `streamer serve`
subprocesses bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg2
from sqlalchemy.dialects.postgresql import psycopg2 as psycopg2_dialect

from streamer import demo
from streamer.catalog import load_catalog
from streamer.params import bind
from streamer.worker import text_clause

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "queries"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/streamer_bench"
REPORT = "sales"


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that pick the benchmark database and its size, shared by every script."""
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL (default: %(default)s)")
    parser.add_argument(
        "--rows", type=int, default=4_000_000, help="sales rows the database must hold; loaded if different"
    )


def psycopg2_dsn(url: str) -> str:
    """Return a libpq DSN for a SQLAlchemy URL such as postgresql+psycopg2://..."""
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


# Dataset ------------------------------------------------------------------------------------


def sales_count(url: str) -> int | None:
    """Return the number of rows in sales, or None when the table does not exist."""
    with psycopg2.connect(psycopg2_dsn(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('sales') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("SELECT count(*) FROM sales")
        return int(cursor.fetchone()[0])


def ensure_dataset(url: str, rows: int) -> None:
    """Load the demo dataset with rows sales unless the sales table already contains exactly that many."""
    existing = sales_count(url)
    if existing == rows:
        return
    print(f"loading {rows:,} demo sales into {url} (found {existing})", file=sys.stderr, flush=True)
    started = time.monotonic()
    demo.load(url, rows)
    print(f"loaded in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class DateRange:
    from_date: dt.date
    to_date: dt.date
    rows: int

    @property
    def query(self) -> dict[str, str]:
        return {"from_date": self.from_date.isoformat(), "to_date": self.to_date.isoformat()}


def date_range_for(url: str, rows: int) -> DateRange:
    """Return the shortest whole-day range of sales, from the first sale on, with at least rows rows.

    The demo spreads sales evenly over time, so the range contains at most one day's sales more
    than rows. Where the table has fewer rows, the range covers all of them.
    """
    with psycopg2.connect(psycopg2_dsn(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SET TimeZone TO 'UTC'")
        cursor.execute("SELECT min(sold_at)::date, max(sold_at)::date + 1 FROM sales")
        first_day, after_last_day = cursor.fetchone()
        cursor.execute(
            "SELECT sold_at::date + 1 FROM sales ORDER BY sold_at OFFSET %s LIMIT 1", (max(0, rows - 1),)
        )
        found = cursor.fetchone()
        to_date = found[0] if found else after_last_day
        cursor.execute(
            "SELECT count(*) FROM sales WHERE sold_at >= %s AND sold_at < %s", (first_day, to_date)
        )
        return DateRange(first_day, to_date, int(cursor.fetchone()[0]))


def bound_report_sql(url: str, date_range: DateRange) -> str:
    """Return the sales report's SQL with its values bound the way the service binds them."""
    report = load_catalog(QUERIES).get(REPORT)
    bindings = bind(report.parameters, list(date_range.query.items()))
    statement = text_clause(report.sql.text, report.list_parameters).bindparams(**bindings)
    compiled = statement.compile(
        dialect=psycopg2_dialect.dialect(), compile_kwargs={"render_postcompile": True}
    )
    with psycopg2.connect(psycopg2_dsn(url)) as connection, connection.cursor() as cursor:
        return cursor.mogrify(str(compiled), compiled.params).decode()


# Memory -------------------------------------------------------------------------------------


def pss_bytes(pid: int) -> int:
    """Return the proportional set size (PSS) of a process in bytes, or 0 once it has exited.

    PSS divides each shared page among the processes that map it, so the PSS of forked processes
    adds up to their real footprint, where their RSS would count shared pages several times.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_pids(root: psutil.Process) -> list[int]:
    try:
        return [root.pid] + [child.pid for child in root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class PSSSampler:
    """Sample the summed PSS of a process and its descendants in a thread, keeping the peaks.

    `peak_total` is the maximum over samples of the sum over the web process, the forkserver and
    the download children. `peak_web` is the web process's own maximum, and `peak_child` the
    maximum of the largest descendant in each sample.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_total = 0
        self.peak_web = 0
        self.peak_child = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)

    def sample_once(self) -> int:
        pids = tree_pids(self.root)
        sizes = {pid: pss_bytes(pid) for pid in pids}
        total = sum(sizes.values())
        self.peak_total = max(self.peak_total, total)
        self.peak_web = max(self.peak_web, sizes.get(self.root.pid, 0))
        others = [size for pid, size in sizes.items() if pid != self.root.pid]
        self.peak_child = max(self.peak_child, max(others, default=0))
        self.samples += 1
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample_once()
            self._stop.wait(self.interval)

    def __enter__(self) -> PSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample_once()


def tree_cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU seconds of a process tree, reaped children included.

    A download child is reaped by the forkserver, so once it has exited its CPU time shows in the
    forkserver's children_user and children_system. Call this only when no download runs, so
    that no child is counted twice.
    """
    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def wait_for_children_reaped(pid: int, expected: int, timeout: float = 5.0) -> None:
    """Wait until the tree under pid has at most expected descendants (the forkserver, once started)."""
    root = psutil.Process(pid)
    deadline = time.monotonic() + timeout
    while len(root.children(recursive=True)) > expected and time.monotonic() < deadline:
        time.sleep(0.02)


def process_cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU seconds of one process, such as a PostgreSQL backend."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def current_tree_pss(pid: int) -> int:
    return sum(pss_bytes(each) for each in tree_pids(psutil.Process(pid)))


# Server -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    chunk_rows: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_server(url: str, chunk_rows: int, log_dir: Path, extra_env: dict[str, str] | None = None) -> Server:
    """Start `streamer serve` on a free loopback port and wait until /healthz returns 200."""
    port = free_port()
    env = {
        **os.environ,
        "STREAMER_DATABASE_URL": url,
        "STREAMER_CHUNK_ROWS": str(chunk_rows),
        "STREAMER_QUERIES_DIR": str(QUERIES),
        "STREAMER_LOG_LEVEL": "warning",
        # The benchmark serves its own loopback database; a concurrency limit would turn the
        # concurrent runs into 429s.
        "STREAMER_ALLOW_ANONYMOUS": "1",
        "STREAMER_MAX_CONCURRENT": "16",
        **(extra_env or {}),
    }
    log_path = log_dir / f"serve-{chunk_rows}-{port}.log"
    streamer = Path(sys.executable).with_name("streamer")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(streamer), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, chunk_rows, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamer serve exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"streamer serve did not return 200 on /healthz within 30 s; see {log_path}")


def stop_server(server: Server) -> None:
    """Stop the server with SIGINT as a terminal would, then SIGKILL if it does not exit."""
    server.process.send_signal(2)
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5)


@contextmanager
def running_servers(url: str, chunk_sizes: list[int], log_dir: Path) -> Iterator[dict[int, Server]]:
    servers: dict[int, Server] = {}
    try:
        for chunk_rows in chunk_sizes:
            servers[chunk_rows] = start_server(url, chunk_rows, log_dir)
        yield servers
    finally:
        for server in servers.values():
            stop_server(server)


# Client -------------------------------------------------------------------------------------


@dataclass
class DownloadResult:
    rows: int
    bytes: int
    seconds: float
    time_to_headers: float
    """Seconds from sending the request to the status line and headers."""
    ttfb: float
    """Seconds from sending the request to the first body byte (the CSV header line)."""
    max_gap: float
    """Maximum wait between two receipts of body bytes, in seconds."""
    heartbeats: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def download(base_url: str, date_range: DateRange, timeout: float = 600) -> DownloadResult:
    """Download the sales report with httpx, discarding the body but counting bytes and rows.

    Rows are lines minus the header line and minus heartbeats (blank lines). This count is exact
    only for reports without line breaks inside values, such as sales.
    """
    newlines = blank_lines = received = 0
    previous_byte = b""
    first_byte_at = last_byte_at = None
    max_gap = 0.0
    started = time.monotonic()
    # Plain bytes, as COPY produces them: by default httpx requests gzip.
    with httpx.stream(
        "GET",
        f"{base_url}/reports/{REPORT}.csv",
        params=date_range.query,
        headers={"Accept-Encoding": "identity"},
        timeout=timeout,
    ) as response:
        response.raise_for_status()
        headers_at = time.monotonic()
        # Without a chunk size, iter_raw yields each network read as it arrives. With one, httpx
        # keeps bytes back until that many have arrived, which hides heartbeats and delays TTFB.
        for block in response.iter_raw():
            now = time.monotonic()
            if first_byte_at is None:
                first_byte_at = now
            else:
                max_gap = max(max_gap, now - last_byte_at)
            last_byte_at = now
            received += len(block)
            newlines += block.count(b"\n")
            blank_lines += block.count(b"\n\n") + (previous_byte == b"\n" and block[:1] == b"\n")
            previous_byte = block[-1:]
    finished = time.monotonic()
    assert first_byte_at is not None, "the response had no body"
    return DownloadResult(
        rows=newlines - 1 - blank_lines,
        bytes=received,
        seconds=finished - started,
        time_to_headers=headers_at - started,
        ttfb=first_byte_at - started,
        max_gap=max_gap,
        heartbeats=blank_lines,
    )


# Reporting ----------------------------------------------------------------------------------


@dataclass
class Series:
    """Repeated measurements of one quantity. The tables quote the median."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self) -> str:
        return f"{min(self.values):,.0f}..{max(self.values):,.0f}"


def mib(size: float) -> float:
    return size / 2**20


def print_table(headers: list[str], rows: list[list[str]], out: Callable[[str], None] = print) -> None:
    """Print a Markdown table, so the output can go into docs/benchmarks.md as it is."""
    out("| " + " | ".join(headers) + " |")
    out("|" + "|".join("---:" if i else "---" for i in range(len(headers))) + "|")
    for row in rows:
        out("| " + " | ".join(row) + " |")
