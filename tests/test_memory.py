"""Memory of the web process and its children while a slow client reads a large download."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.conftest import Server, child_pids, write_report


def pss_bytes(pid: int) -> int:
    """Return a process's proportional set size, the share of memory a container limit counts."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def service_pss(server: Server) -> int:
    """Return the PSS of the server and all its descendants (forkserver, downloads), summed."""
    pids = [server.process.pid]
    for pid in pids:
        pids.extend(child_pids(pid))
    return sum(pss_bytes(pid) for pid in pids)


def read_slowly(url: str, rate_bytes: int, seconds: float) -> int:
    """Read url at about rate_bytes per second for seconds, then close; return the bytes read."""
    received = 0
    started = time.monotonic()
    with httpx.stream("GET", url, timeout=60) as response:
        for piece in response.iter_raw(chunk_size=rate_bytes // 10):
            received += len(piece)
            elapsed = time.monotonic() - started
            if elapsed > seconds:
                break
            time.sleep(max(0.0, received / rate_bytes - elapsed))
    return received


def test_slow_client_memory_stays_bounded(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "tiny", "SELECT 1 AS x")
    write_report(
        queries_dir,
        "wide",
        "SELECT g, md5(g::text) AS h, md5((g + 1)::text) AS i FROM generate_series(1, 2000000) g",
    )
    server = start_server(
        STREAMER_DATABASE_URL=postgres_url, STREAMER_QUERIES_DIR=str(queries_dir), STREAMER_CHUNK_ROWS="50000"
    )
    httpx.get(server.url + "/reports/tiny.csv", timeout=60)  # the forkserver has forked once
    time.sleep(1.0)
    baseline = service_pss(server)

    samples: list[tuple[float, int]] = []
    reading = threading.Thread(target=read_slowly, args=(server.url + "/reports/wide.csv", 50_000, 10.0))
    started = time.monotonic()
    reading.start()
    while reading.is_alive():
        samples.append((time.monotonic() - started, service_pss(server)))
        time.sleep(0.2)
    reading.join()

    # One chunk is 50,000 rows of about 75 bytes: under 4 MB as CSV, a few MB more as a DataFrame.
    # A download also costs memory that does not grow with the rows: the child's heap (driver
    # rows, Arrow arrays, pickling) and the parent's reader thread. Measured about 160 MB above the
    # idle service with this report and chunk size; the bound leaves room for allocator noise.
    peak = max(pss for _, pss in samples)
    early = max(pss for at, pss in samples if 2.0 <= at <= 4.0)
    late = max(pss for at, pss in samples if at >= 8.0)
    assert peak - baseline < 200 * 2**20, f"baseline {baseline >> 20} MB, peak {peak >> 20} MB"
    assert late - early < 20 * 2**20, f"grew from {early >> 20} MB to {late >> 20} MB while the client read"
