"""Faults injected for real: client disconnects, failing queries, killed children and backends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from streamer.response import FAILURE_MARKER
from tests.conftest import IDENTITY, Server, download_pids, wait_until, write_report


def backends_of(engine: Engine, download_id: str) -> list[int]:
    """Return the server processes in pg_stat_activity that run the download's connection."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": f"streamer {download_id}"},
        )
        return [row.pid for row in rows]


def start_pg_server(start_server, url: str, queries_dir: Path, **env: str) -> Server:
    return start_server(STREAMER_DATABASE_URL=url, STREAMER_QUERIES_DIR=str(queries_dir), **env)


def read_some_then_close(url: str, min_bytes: int, engine: Engine) -> str:
    """Read at least min_bytes of a download (or just the headers for 0), then drop the connection.

    Returns the download id, after checking that its statement was running on the server.
    """
    received = 0
    with httpx.stream("GET", url, timeout=30, headers=IDENTITY) as response:
        assert response.status_code == 200
        download_id = response.headers["x-download-id"]
        for piece in response.iter_raw():
            received += len(piece)
            if received >= min_bytes:
                break
        assert backends_of(engine, download_id)
    return download_id


def curl(url: str, output: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "-o", str(output), url], capture_output=True, timeout=60)


@pytest.mark.parametrize(
    ("sql", "min_bytes"),
    [
        ("SELECT 1 AS x FROM pg_sleep(120)", 0),
        ("SELECT g, md5(g::text) FROM generate_series(1, 50000000) g", 200_000),
    ],
    ids=["while-query-runs", "mid-stream"],
)
def test_disconnect_ends_child_and_statement(
    start_server, postgres_url: str, postgres_engine: Engine, queries_dir: Path, sql: str, min_bytes: int
) -> None:
    write_report(queries_dir, "long", sql)
    server = start_pg_server(start_server, postgres_url, queries_dir, STREAMER_CHUNK_ROWS="1000")

    download_id = read_some_then_close(server.url + "/reports/long.csv", min_bytes, postgres_engine)
    closed_at = time.monotonic()

    assert wait_until(lambda: not backends_of(postgres_engine, download_id), timeout=2.0)
    assert wait_until(lambda: not download_pids(server), timeout=2.0 - (time.monotonic() - closed_at) + 0.5)
    end_line = server.wait_for_log("outcome=client disconnected")
    assert "report=long" in end_line


def test_error_mid_stream_marks_body_incomplete(
    start_server, postgres_url: str, queries_dir: Path, tmp_path: Path
) -> None:
    sql = "SELECT n, 1 / (n - 600000) AS x FROM generate_series(1, 1000000) n"
    write_report(queries_dir, "divide", sql)
    server = start_pg_server(start_server, postgres_url, queries_dir, STREAMER_CHUNK_ROWS="100000")
    output = tmp_path / "divide.csv"

    result = curl(server.url + "/reports/divide.csv", output)

    assert result.returncode == 18  # transfer closed with outstanding read data remaining
    lines = output.read_bytes().splitlines()
    assert lines[0] == b"n,x"
    assert len(lines) > 100_000  # some chunks went out before the failing row
    assert lines[-1].startswith(FAILURE_MARKER.encode())
    assert b"division by zero" in server.wait_for_log("failed after").encode()
    server.wait_for_log("outcome=failed")
    assert "Traceback" not in server.log()  # an expected failure is one log line, not a crash trace
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(server.url + "/reports/divide.csv", timeout=60)


def test_error_in_first_rows_is_http_error(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "divide_early", "SELECT n, 1 / (n - 3) AS x FROM generate_series(1, 10) n")
    server = start_pg_server(start_server, postgres_url, queries_dir)

    response = httpx.get(server.url + "/reports/divide_early.csv")

    assert response.status_code == 400
    assert response.json()["sqlstate"] == "22012"
    assert "division by zero" in response.json()["error"]


def slow_rows_report(queries_dir: Path) -> None:
    """Write a report whose rows trickle out, one every 50 ms.

    Each row is wider than PostgreSQL's 8 KB send buffer, so COPY sends it as soon as it exists.
    """
    sql = (
        "SELECT g AS n, repeat('x', 9000) AS pad FROM generate_series(1, 400) g, "
        "LATERAL (SELECT pg_sleep(0.05 + 0 * g)) s"
    )
    write_report(queries_dir, "trickle", sql)


def stream_until_broken(url: str, action_after_bytes: int, action) -> tuple[bytes, BaseException | None]:
    """Stream url, run action(download_id) once action_after_bytes arrived; return body and error."""
    body = bytearray()
    acted = False
    try:
        with httpx.stream("GET", url, timeout=30, headers=IDENTITY) as response:
            for piece in response.iter_raw():
                body.extend(piece)
                if not acted and len(body) >= action_after_bytes:
                    action(response.headers["x-download-id"])
                    acted = True
    except httpx.HTTPError as exc:
        return bytes(body), exc
    return bytes(body), None


def test_killed_child_fails_download(start_server, postgres_url: str, queries_dir: Path) -> None:
    slow_rows_report(queries_dir)
    server = start_pg_server(
        start_server, postgres_url, queries_dir, STREAMER_CHUNK_ROWS="1", STREAMER_HEARTBEAT_SECONDS="1"
    )

    def kill_child(download_id: str) -> None:
        (pid,) = download_pids(server)
        os.kill(pid, signal.SIGKILL)

    started = time.monotonic()
    body, error = stream_until_broken(server.url + "/reports/trickle.csv", 20, kill_child)

    assert isinstance(error, httpx.RemoteProtocolError)
    assert time.monotonic() - started < 10
    assert body.splitlines()[-1].startswith(FAILURE_MARKER.encode())
    assert "killed by SIGKILL" in server.wait_for_log("failed after")
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert wait_until(lambda: not download_pids(server), timeout=3.0)


def test_child_killed_mid_message_fails_download(start_server, postgres_url: str, queries_dir: Path) -> None:
    # Chunks of several MB, read slowly: the child is killed while it writes one into the pipe,
    # which leaves the parent a message cut in half.
    write_report(queries_dir, "big", "SELECT g, md5(g::text) AS h FROM generate_series(1, 3000000) g")
    server = start_pg_server(start_server, postgres_url, queries_dir, STREAMER_CHUNK_ROWS="100000")
    body = bytearray()
    error: BaseException | None = None

    started = time.monotonic()
    try:
        with httpx.stream("GET", server.url + "/reports/big.csv", timeout=30, headers=IDENTITY) as response:
            # No chunk_size: httpx would drop the last partial piece when the transfer breaks.
            for piece in response.iter_raw():
                body.extend(piece)
                if len(body) > 2_000_000 and download_pids(server):
                    os.kill(download_pids(server)[0], signal.SIGKILL)
                time.sleep(0.01)
    except httpx.HTTPError as exc:
        error = exc

    assert isinstance(error, httpx.RemoteProtocolError), repr(error)  # a hang would time out
    assert time.monotonic() - started < 30
    assert bytes(body).splitlines()[-1].startswith(FAILURE_MARKER.encode())
    assert "killed by SIGKILL" in server.wait_for_log("failed after")
    assert httpx.get(server.url + "/healthz").json()["downloads"] == 0


def test_terminated_backend_fails_download(
    start_server, postgres_url: str, postgres_engine: Engine, queries_dir: Path
) -> None:
    slow_rows_report(queries_dir)
    server = start_pg_server(start_server, postgres_url, queries_dir, STREAMER_CHUNK_ROWS="1")

    def terminate_backend(download_id: str) -> None:
        (pid,) = backends_of(postgres_engine, download_id)
        with postgres_engine.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()

    body, error = stream_until_broken(server.url + "/reports/trickle.csv", 20, terminate_backend)

    assert isinstance(error, httpx.RemoteProtocolError)
    assert body.splitlines()[-1].startswith(FAILURE_MARKER.encode())
    assert "closed the connection" in server.wait_for_log("failed after")
    assert wait_until(lambda: not download_pids(server), timeout=3.0)


def test_statement_timeout_is_504(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "sleep_default", "SELECT 1 AS x FROM pg_sleep(5)")
    write_report(queries_dir, "sleep_override", "-- @timeout 0.5\nSELECT 1 AS x FROM pg_sleep(5)")
    server = start_pg_server(start_server, postgres_url, queries_dir, STREAMER_QUERY_TIMEOUT_SECONDS="1")

    by_setting = httpx.get(server.url + "/reports/sleep_default.csv", timeout=30)
    by_report = httpx.get(server.url + "/reports/sleep_override.csv", timeout=30)

    for response in (by_setting, by_report):
        assert response.status_code == 504
        assert response.json()["sqlstate"] == "57014"
        assert "statement timeout" in response.json()["error"]


def test_report_timeout_overrides_setting(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "sleep_longer", "-- @timeout 10\nSELECT 1 AS x FROM pg_sleep(2)")
    server = start_pg_server(start_server, postgres_url, queries_dir, STREAMER_QUERY_TIMEOUT_SECONDS="1")

    response = httpx.get(server.url + "/reports/sleep_longer.csv", timeout=30)

    assert response.status_code == 200
    assert response.content == b"x\n1\n"


def test_sqlite_timeout_is_504(start_server, queries_dir: Path) -> None:
    sql = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000000000) "
        "SELECT count(*) AS n FROM r"
    )
    write_report(queries_dir, "spin", "-- @timeout 0.5\n" + sql)
    server = start_server(STREAMER_QUERIES_DIR=str(queries_dir))

    started = time.monotonic()
    response = httpx.get(server.url + "/reports/spin.csv", timeout=30)

    assert response.status_code == 504
    assert response.json()["sqlstate"] == "57014"
    assert time.monotonic() - started < 5


def test_unreachable_database_is_503(start_server, queries_dir: Path) -> None:
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    server = start_server(
        STREAMER_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed_port}/test",
        STREAMER_QUERIES_DIR=str(queries_dir),
    )

    response = httpx.get(
        server.url + "/reports/sales.csv", params={"from_date": "2024-01-01", "to_date": "2024-01-02"}
    )

    assert response.status_code == 503
    assert "connection" in response.json()["error"].lower()


def test_report_cannot_write(
    start_server, postgres_url: str, postgres_engine: Engine, queries_dir: Path
) -> None:
    with postgres_engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS write_probe CASCADE"))
        connection.execute(text("CREATE TABLE write_probe (id integer)"))
        connection.execute(text("INSERT INTO write_probe VALUES (1)"))
        connection.execute(
            text(
                "CREATE OR REPLACE FUNCTION write_probe_delete() RETURNS bigint LANGUAGE sql VOLATILE "
                "AS 'WITH gone AS (DELETE FROM write_probe RETURNING id) SELECT count(*) FROM gone'"
            )
        )
    write_report(queries_dir, "by_function", "SELECT write_probe_delete() AS n")
    write_report(
        queries_dir,
        "by_cte",
        "WITH gone AS (DELETE FROM write_probe RETURNING id) SELECT count(*) AS n FROM gone",
    )
    server = start_pg_server(start_server, postgres_url, queries_dir)

    by_function = httpx.get(server.url + "/reports/by_function.csv")
    by_cte = httpx.get(server.url + "/reports/by_cte.csv")

    assert by_function.status_code == 500
    assert by_function.json()["sqlstate"] == "25006"  # read_only_sql_transaction
    assert by_cte.status_code == 500
    with postgres_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM write_probe")).scalar_one() == 1
