"""SIGTERM during downloads: running ones get a grace period, then end as failed downloads."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from streamer.response import FAILURE_MARKER
from tests.conftest import IDENTITY, download_pids, wait_until, write_report


def collect(url: str, results: dict[str, object], key: str) -> None:
    """Download url into results[key] as (body, error), keeping what arrived before an error."""
    body = bytearray()
    try:
        with httpx.stream("GET", url, timeout=60, headers=IDENTITY) as response:
            results[key + "_id"] = response.headers["x-download-id"]
            for piece in response.iter_raw():
                body.extend(piece)
        results[key] = (bytes(body), None)
    except httpx.HTTPError as exc:
        results[key] = (bytes(body), exc)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_finishes_short_and_fails_long_downloads(
    start_server, postgres_url: str, postgres_engine: Engine, queries_dir: Path
) -> None:
    # Rows wider than PostgreSQL's 8 KB send buffer, so COPY sends each one as soon as it exists.
    trickle = (
        "SELECT g AS n, repeat('x', 9000) AS pad FROM generate_series(1, {rows}) g, "
        "LATERAL (SELECT pg_sleep(0.05 + 0 * g)) s"
    )
    write_report(queries_dir, "short", trickle.format(rows=40))  # about 2 s
    write_report(queries_dir, "long", trickle.format(rows=1200))  # about 60 s
    server = start_server(
        STREAMER_DATABASE_URL=postgres_url,
        STREAMER_QUERIES_DIR=str(queries_dir),
        STREAMER_CHUNK_ROWS="1",
        STREAMER_SHUTDOWN_GRACE_SECONDS="4",
        STREAMER_HEARTBEAT_SECONDS="1",
    )
    results: dict[str, object] = {}
    threads = [
        threading.Thread(target=collect, args=(f"{server.url}/reports/{name}.csv", results, name))
        for name in ("short", "long")
    ]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: len(download_pids(server)) == 2, timeout=10)
    children = download_pids(server)

    time.sleep(0.5)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=30)
    server.process.wait(timeout=30)
    exited_after = time.monotonic() - signalled

    short_body, short_error = results["short"]
    long_body, long_error = results["long"]
    assert short_error is None
    numbers = [line.split(b",")[0] for line in short_body.split(b"\n") if line]
    assert numbers == [b"n"] + [str(n).encode() for n in range(1, 41)]
    assert isinstance(long_error, httpx.RemoteProtocolError)
    assert long_body.splitlines()[-1].startswith(FAILURE_MARKER.encode())
    assert 4 <= exited_after < 12
    assert not any(pid_alive(pid) for pid in children)
    with postgres_engine.connect() as connection:
        names = [f"streamer {results['short_id']}", f"streamer {results['long_id']}"]
        left = connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name = ANY(:names)"),
            {"names": names},
        ).scalar_one()
    assert left == 0
    log = server.log()
    assert "shut down before the download finished" in log
    assert "outcome=complete" in log
