"""The HTTP interface, end to end: a real `streamer serve` on loopback and a real HTTP client."""

from __future__ import annotations

import csv
import io
import itertools
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.conftest import write_report

SALES_PARAMS = {"from_date": "2024-01-01", "to_date": "2024-02-01"}
# By default httpx requests gzip, so tests that inspect the bytes on the wire request them plain.
PLAIN = {"Accept-Encoding": "identity"}


def read_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def test_reports_lists_parameters(start_server) -> None:
    server = start_server()

    reports = httpx.get(server.url + "/reports").json()["reports"]

    sales = next(report for report in reports if report["name"] == "sales")
    assert sales["description"].startswith("Sales lines between two dates")
    assert [p["name"] for p in sales["parameters"]] == ["from_date", "to_date", "product_ids"]
    product_ids = sales["parameters"][2]
    assert product_ids == {
        "name": "product_ids",
        "type": "list[int]",
        "required": False,
        "default": [],
        "description": "Only these product ids; all products when empty.",
    }
    assert {report["name"] for report in reports} >= {"sales", "daily_sales"}


def test_healthz_ok(start_server) -> None:
    server = start_server()

    response = httpx.get(server.url + "/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "downloads": 0}


def test_sales_download_on_embedded_sqlite(start_server, sqlite_demo: Path) -> None:
    server = start_server()

    response = httpx.get(server.url + "/reports/sales.csv", params=SALES_PARAMS)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="sales_2024-01-01_2024-02-01.csv"'
    frame = pd.read_csv(io.BytesIO(response.content))
    assert list(frame.columns) == [
        "sale_id", "sold_at", "product_id", "product", "category",
        "customer", "country", "quantity", "unit_price", "revenue",
    ]  # fmt: skip
    assert len(frame) > 500
    assert frame["sold_at"].min() >= "2024-01-01"
    assert frame["sold_at"].max() < "2024-02-01"
    server.wait_for_log("outcome=complete")


def test_sales_download_matches_direct_query(
    start_server, postgres_demo: str, postgres_engine: Engine
) -> None:
    server = start_server(STREAMER_DATABASE_URL=postgres_demo, STREAMER_CHUNK_ROWS="97")

    response = httpx.get(server.url + "/reports/sales.csv", params={**SALES_PARAMS, "product_ids": "3,5"})

    assert response.status_code == 200
    rows = read_rows(response.content)
    with postgres_engine.connect() as connection:
        expected = connection.execute(
            text(
                "SELECT s.id FROM sales s WHERE s.sold_at >= '2024-01-01' AND s.sold_at < '2024-02-01' "
                "AND s.product_id IN (3, 5) ORDER BY s.sold_at, s.id"
            )
        ).scalars()
        expected_ids = [str(sale_id) for sale_id in expected]
    assert [row["sale_id"] for row in rows] == expected_ids
    assert {row["product_id"] for row in rows} == {"3", "5"}


def test_list_parameter_repeated_keys(start_server, postgres_demo: str) -> None:
    server = start_server(STREAMER_DATABASE_URL=postgres_demo)
    url = server.url + "/reports/sales.csv"

    repeated = httpx.get(url, params=[*SALES_PARAMS.items(), ("product_ids", "3"), ("product_ids", "5")])
    commas = httpx.get(url, params={**SALES_PARAMS, "product_ids": "3,5"})

    assert repeated.status_code == 200
    assert repeated.content == commas.content
    assert len(read_rows(repeated.content)) > 0


def test_daily_sales_aggregates(start_server, postgres_demo: str) -> None:
    server = start_server(STREAMER_DATABASE_URL=postgres_demo)

    response = httpx.get(server.url + "/reports/daily_sales.csv", params=SALES_PARAMS)

    frame = pd.read_csv(io.BytesIO(response.content))
    assert list(frame.columns) == ["day", "product_id", "product", "units", "revenue"]
    assert frame["day"].nunique() == 31
    assert not frame.duplicated(["day", "product_id"]).any()


@pytest.mark.parametrize(
    ("query", "status", "parameter", "phrase"),
    [
        ("from_date=2024-13-01&to_date=2024-02-01", 400, "from_date", "expected a date as YYYY-MM-DD"),
        ("to_date=2024-02-01", 400, "from_date", "Missing required parameter"),
        ("from_date=2024-01-01&to_date=2024-02-01&colour=red", 400, "colour", "Unknown parameter"),
        (
            "from_date=2024-01-01&to_date=2024-02-01&product_ids=1,x",
            400,
            "product_ids",
            "expected a whole number",
        ),
        ("from_date=2024-01-01&from_date=2024-01-02&to_date=2024-02-01", 400, "from_date", "given 2 times"),
        ("from_date=%FF&to_date=2024-02-01", 400, None, "not valid UTF-8"),
    ],
)
def test_bad_parameters_rejected(
    start_server, query: str, status: int, parameter: str | None, phrase: str
) -> None:
    server = start_server()

    response = httpx.get(f"{server.url}/reports/sales.csv?{query}")

    assert response.status_code == status
    body = response.json()
    assert phrase in body["error"]
    assert body.get("parameter") == parameter
    assert "download" not in server.log()  # rejected before any child started


def test_unknown_report_and_format_404(start_server) -> None:
    server = start_server()

    missing = httpx.get(server.url + "/reports/nope.csv")
    bad_format = httpx.get(server.url + "/reports/sales.xlsx")
    no_format = httpx.get(server.url + "/reports/sales")

    assert missing.status_code == 404
    assert "not found" in missing.json()["error"]
    assert bad_format.status_code == 404
    assert ".csv" in bad_format.json()["error"]
    assert no_format.status_code == 404


def test_empty_result_has_header(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "empty", "SELECT 1::int AS id, 'x'::text AS name WHERE false")
    server = start_server(STREAMER_DATABASE_URL=postgres_url, STREAMER_QUERIES_DIR=str(queries_dir))

    response = httpx.get(server.url + "/reports/empty.csv")

    assert response.status_code == 200
    assert response.content == b"id,name\n"


def test_sql_error_before_body_is_http_error(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "broken", "SELECT * FROM no_such_table")
    write_report(queries_dir, "bad_cast", "-- @param n text\nSELECT CAST(:n AS integer) AS n")
    server = start_server(STREAMER_DATABASE_URL=postgres_url, STREAMER_QUERIES_DIR=str(queries_dir))

    broken = httpx.get(server.url + "/reports/broken.csv")
    bad_cast = httpx.get(server.url + "/reports/bad_cast.csv", params={"n": "x"})

    assert broken.status_code == 500
    assert "no_such_table" in broken.json()["error"]
    assert broken.json()["sqlstate"] == "42P01"
    assert bad_cast.status_code == 400
    assert bad_cast.json()["sqlstate"] == "22P02"
    server.wait_for_log("outcome=failed")


def received_times(url: str, params: dict[str, str] | None = None) -> tuple[list[float], bytes, float]:
    """Download url, returning when each piece of the body arrived, the body, and the start time."""
    started = time.monotonic()
    times: list[float] = []
    body = bytearray()
    with httpx.stream("GET", url, params=params, headers=PLAIN, timeout=60) as response:
        assert response.status_code == 200
        times.append(time.monotonic())  # status line and headers
        for piece in response.iter_raw():
            times.append(time.monotonic())
            body.extend(piece)
    return times, bytes(body), started


def largest_gap(times: list[float]) -> float:
    """Return the longest wait between two pieces of the response, from the status line on."""
    return max(later - earlier for earlier, later in itertools.pairwise(times))


def test_heartbeats_during_slow_query(start_server, postgres_url: str, queries_dir: Path) -> None:
    heartbeat = 0.5
    write_report(queries_dir, "slow", "SELECT g AS n FROM generate_series(1, 3) g, pg_sleep(5)")
    server = start_server(
        STREAMER_DATABASE_URL=postgres_url,
        STREAMER_QUERIES_DIR=str(queries_dir),
        STREAMER_HEARTBEAT_SECONDS=str(heartbeat),
    )

    times, body, started = received_times(server.url + "/reports/slow.csv")

    assert times[0] - started < 5.0
    assert times[-1] - started > 3 * heartbeat
    assert largest_gap(times) < heartbeat + 0.5
    assert body.count(b"\n\n") >= 2  # heartbeats reached the wire as blank lines
    assert pd.read_csv(io.BytesIO(body))["n"].tolist() == [1, 2, 3]
    assert read_rows(body) == [{"n": "1"}, {"n": "2"}, {"n": "3"}]


@pytest.mark.parametrize("copy", ["1", "0"], ids=["copy", "cursor"])
def test_heartbeats_between_chunks(start_server, postgres_url: str, queries_dir: Path, copy: str) -> None:
    heartbeat = 0.5
    sql = (
        "SELECT g AS n, repeat('x', 9000) AS pad FROM generate_series(1, 4) g, "
        "LATERAL (SELECT pg_sleep(CASE WHEN g = 3 THEN 2 ELSE 0 END)) s"
    )
    write_report(queries_dir, "bursts", sql)
    server = start_server(
        STREAMER_DATABASE_URL=postgres_url,
        STREAMER_QUERIES_DIR=str(queries_dir),
        STREAMER_HEARTBEAT_SECONDS=str(heartbeat),
        STREAMER_CHUNK_ROWS="2",
        STREAMER_POSTGRES_COPY=copy,
    )

    times, body, _ = received_times(server.url + "/reports/bursts.csv")

    assert largest_gap(times) < heartbeat + 0.5
    assert [row["n"] for row in read_rows(body)] == ["1", "2", "3", "4"]
    if copy == "0":
        # A cursor delivers the first chunk at once. COPY output waits in PostgreSQL's 8 KB send
        # buffer, so there the first chunk is complete only when the delayed third row arrives.
        first_chunk_end = body.index(b"\n2,") + 9000 + 4
        assert body[first_chunk_end : first_chunk_end + 2] == b"\n\n"


def test_healthz_answers_during_slow_downloads(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "sleepy", "SELECT 1 AS x FROM pg_sleep(6)")
    server = start_server(
        STREAMER_DATABASE_URL=postgres_url,
        STREAMER_QUERIES_DIR=str(queries_dir),
        STREAMER_HEARTBEAT_SECONDS="0.5",
    )
    results: list[tuple[list[float], bytes, float]] = []
    downloads = [
        threading.Thread(target=lambda: results.append(received_times(server.url + "/reports/sleepy.csv")))
        for _ in range(2)
    ]
    for thread in downloads:
        thread.start()

    time.sleep(1.5)
    before = time.monotonic()
    health = httpx.get(server.url + "/healthz", timeout=5)
    health_seconds = time.monotonic() - before
    for thread in downloads:
        thread.join(timeout=30)

    assert health.status_code == 200
    assert health_seconds < 0.5
    assert len(results) == 2
    for times, body, _ in results:
        assert largest_gap(times) < 1.0
        assert read_rows(body) == [{"x": "1"}]


def test_download_logs_start_and_end(start_server) -> None:
    server = start_server()

    response = httpx.get(server.url + "/reports/sales.csv", params=SALES_PARAMS, headers=PLAIN)

    download_id = response.headers["x-download-id"]
    end_line = server.wait_for_log(f"download {download_id} ended")
    assert f"download {download_id} started: report=sales" in server.log()
    rows = len(read_rows(response.content))
    assert f"rows={rows} " in end_line
    assert f"bytes={len(response.content)} " in end_line
    assert "duration=" in end_line
    assert end_line.endswith("outcome=complete")


MIXED_VALUES = """
SELECT * FROM (VALUES
    (1::bigint, NULL::text, ''::text, 'a,b'::text, 'say "hi"'::text, E'two\\nlines'::text, 0.10::numeric(5, 2),
     'NaN'::float8, '2024-01-01 12:00:00+00'::timestamptz, true, '\\.'::text),
    (NULL, 'x', ' lead', 'tail ', '', E'cr\\rhere', NULL, 1e300, NULL, NULL, NULL)
) AS t(id, a, b, c, d, e, f, g, h, i, j)
"""


def test_copy_and_cursor_paths_identical(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "mixed", MIXED_VALUES)
    bodies = []
    for copy in ("1", "0"):
        for chunk_rows in ("1", "20000"):
            server = start_server(
                STREAMER_DATABASE_URL=postgres_url,
                STREAMER_QUERIES_DIR=str(queries_dir),
                STREAMER_POSTGRES_COPY=copy,
                STREAMER_CHUNK_ROWS=chunk_rows,
            )
            response = httpx.get(server.url + "/reports/mixed.csv")
            assert response.status_code == 200
            bodies.append(response.content)
            server.stop()

    assert len(set(bodies)) == 1
    lines = bodies[0].split(b"\n")
    assert lines[1] == b'1,,"","a,b","say ""hi""","two'
