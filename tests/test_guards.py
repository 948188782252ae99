"""Guards: the download limit, access tokens, and bad input that must never reach SQL."""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import download_pids, wait_until, write_report

TOKEN = "test-token-0123456789abcdef"
SALES_QUERY = "from_date=2024-01-01&to_date=2024-01-02"


def test_limit_rejects_at_once_with_retry_after(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "sleepy", "SELECT 1 AS x FROM pg_sleep(3)")
    server = start_server(
        STREAMER_DATABASE_URL=postgres_url, STREAMER_QUERIES_DIR=str(queries_dir), STREAMER_MAX_CONCURRENT="2"
    )
    running = [
        threading.Thread(target=httpx.get, args=(server.url + "/reports/sleepy.csv",), kwargs={"timeout": 30})
        for _ in range(2)
    ]
    for thread in running:
        thread.start()
    assert wait_until(lambda: httpx.get(server.url + "/healthz").json()["downloads"] == 2, timeout=5)

    started = time.monotonic()
    rejected = httpx.get(server.url + "/reports/sleepy.csv", timeout=30)
    elapsed = time.monotonic() - started
    for thread in running:
        thread.join(timeout=30)

    assert rejected.status_code == 429
    assert rejected.headers["retry-after"] == "5"
    assert "limit is 2" in rejected.json()["error"]
    assert elapsed < 1.0
    after = httpx.get(server.url + "/reports/sleepy.csv", timeout=30)
    assert after.status_code == 200


def test_limit_under_load(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "second", "SELECT g AS n FROM generate_series(1, 1000) g, pg_sleep(1)")
    server = start_server(
        STREAMER_DATABASE_URL=postgres_url, STREAMER_QUERIES_DIR=str(queries_dir), STREAMER_MAX_CONCURRENT="4"
    )
    expected_body = b"n\n" + b"".join(f"{n}\n".encode() for n in range(1, 1001))

    def fetch(_: int) -> httpx.Response:
        return httpx.get(server.url + "/reports/second.csv", timeout=30)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(fetch, range(50)))
    elapsed = time.monotonic() - started

    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {200, 429}
    assert 1 <= statuses.count(200) <= 4 * 3  # at most 4 at a time, each about a second
    assert all(r.content.replace(b"\n\n", b"\n") == expected_body for r in responses if r.status_code == 200)
    assert elapsed < 20
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok", "downloads": 0}
    assert wait_until(lambda: not download_pids(server), timeout=5)


def test_tokens_required_when_set(start_server) -> None:
    server = start_server(STREAMER_API_TOKENS=f"other-token-0123456789,{TOKEN}")

    missing = httpx.get(server.url + "/reports")
    wrong = httpx.get(server.url + "/reports", headers={"Authorization": "Bearer wrong-token-0123456789"})
    right = httpx.get(server.url + "/reports", headers={"Authorization": f"Bearer {TOKEN}"})
    download = httpx.get(
        f"{server.url}/reports/sales.csv?{SALES_QUERY}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    health = httpx.get(server.url + "/healthz")

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Missing access token" in missing.json()["error"]
    assert wrong.status_code == 401
    assert "Invalid access token" in wrong.json()["error"]
    assert right.status_code == 200
    assert download.status_code == 200
    assert download.content.startswith(b"sale_id,")
    assert health.status_code == 200
    assert TOKEN not in server.log()


def run_serve(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer.cli", "serve", "--port", "1"],
        env={**os.environ, "STREAMER_API_TOKENS": "", "STREAMER_ALLOW_ANONYMOUS": "", **env},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )


def test_database_without_token_refuses_to_start(postgres_url: str, tmp_path: Path) -> None:
    result = run_serve({"STREAMER_DATABASE_URL": postgres_url}, tmp_path)

    assert result.returncode == 1
    assert "STREAMER_API_TOKENS is not set" in result.stderr
    assert "STREAMER_ALLOW_ANONYMOUS=1" in result.stderr


def test_anonymous_database_logs_warning(start_server, postgres_url: str) -> None:
    server = start_server(STREAMER_DATABASE_URL=postgres_url, STREAMER_ALLOW_ANONYMOUS="1")

    assert "reports are served to anyone without a token" in server.wait_for_log("WARNING")


def test_short_token_refused(tmp_path: Path) -> None:
    result = run_serve({"STREAMER_API_TOKENS": "short"}, tmp_path)

    assert result.returncode == 1
    assert "shorter than 16 characters" in result.stderr


def echo_server(start_server, postgres_url: str, queries_dir: Path):
    write_report(
        queries_dir,
        "echo",
        '-- @param value text\n-- @param ids list[int] default=""\nSELECT :value AS value, :ids__count AS n WHERE -1 NOT IN :ids',
    )
    return start_server(STREAMER_DATABASE_URL=postgres_url, STREAMER_QUERIES_DIR=str(queries_dir))


def test_hostile_text_is_bound_not_pasted(start_server, postgres_url: str, queries_dir: Path) -> None:
    server = echo_server(start_server, postgres_url, queries_dir)
    values = ["'; DROP TABLE sales; --", 'a"b', "x:y::int", "$$", "\\", "line\nbreak", "ü €"]

    for value in values:
        response = httpx.get(server.url + "/reports/echo.csv", params={"value": value})
        assert response.status_code == 200, value
        rows = response.content.decode()
        assert list(csv.DictReader(io.StringIO(rows, newline=""))) == [{"value": value, "n": "0"}]


@pytest.mark.parametrize(
    ("query", "phrase"),
    [
        ("value=a%00b", "expected text without NUL characters"),
        ("value=" + "x" * 1_000_000, "has 1000000 characters: the maximum is 10000"),
        ("value=x&ids=" + ",".join(str(i) for i in range(100_000)), "has 100000 items: the maximum is 10000"),
        ("value=%C3%28", "not valid UTF-8"),
        ("value=x&ids=99999999999999999999", "expected a whole number"),
        ("value=x&" + "&".join(f"ids={i}" for i in range(10_200)), "too many fields"),
    ],
    ids=["nul", "megabyte", "long-list", "invalid-utf8", "bigint-overflow", "many-fields"],
)
def test_hostile_parameters_rejected(
    start_server, postgres_url: str, queries_dir: Path, query: str, phrase: str
) -> None:
    server = echo_server(start_server, postgres_url, queries_dir)

    # http.client, because httpx refuses URLs longer than 64 KiB before sending them.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", f"/reports/echo.csv?{query}")
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()

    assert response.status == 400
    assert phrase in body["error"]
    assert "download" not in server.log()  # no child started, no query ran


@pytest.mark.parametrize(
    "path",
    [
        "/reports/..%2F..%2Fetc%2Fpasswd.csv",
        "/reports/%2Fetc%2Fpasswd.csv",
        "/reports/..",
        "/reports/%00.csv",
        "/reports/sales%00.csv",
        "/reports/" + "a" * 5000 + ".csv",
        "/reports/sales.csv%2F..%2F..",
    ],
)
def test_hostile_report_names_404(start_server, path: str) -> None:
    server = start_server()

    # http.client sends the path as written; httpx would resolve the dot segments first.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()

    assert response.status == 404
    assert len(body["error"]) < 400
    assert "download" not in server.log()


def test_oversized_header_rejected(start_server) -> None:
    server = start_server()

    try:
        response = httpx.get(server.url + "/reports", headers={"X-Padding": "a" * (3 * 1024 * 1024)})
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        response = None  # the server may reset the connection while the client is still sending

    if response is not None:
        assert 400 <= response.status_code < 500
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_unknown_path_and_method_json(start_server) -> None:
    server = start_server()

    missing = httpx.get(server.url + "/nowhere")
    post = httpx.post(server.url + "/reports/sales.csv")

    assert missing.status_code == 404
    assert "No such path '/nowhere'" in missing.json()["error"]
    assert post.status_code == 405
    assert "use GET" in post.json()["error"]
