"""GET /metrics: Prometheus counters that follow the downloads a server handles."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import IDENTITY, write_report

TOKEN = "metrics-test-token-0123456789"
SALES_PARAMS = {"from_date": "2024-01-01", "to_date": "2024-01-08"}


def samples(server_url: str, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    """Return every sample of the streamer_ metrics, keyed by name and sorted labels."""
    response = httpx.get(server_url + "/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name.startswith("streamer_"):
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_count_downloads(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "broken", "SELECT * FROM no_such_table")
    server = start_server(STREAMER_DATABASE_URL=postgres_url, STREAMER_QUERIES_DIR=str(queries_dir))
    before = samples(server.url)

    broken = httpx.get(server.url + "/reports/broken.csv")
    bad_parameters = httpx.get(server.url + "/reports/sales.csv", params={"from_date": "x"})
    server.wait_for_log("outcome=failed")
    after = samples(server.url)

    assert broken.status_code == 500
    assert bad_parameters.status_code == 400
    assert before[("streamer_downloads_active", ())] == 0
    assert after[("streamer_downloads_started_total", (("report", "broken"),))] == 1
    assert after[("streamer_downloads_failed_total", (("reason", "query_failed"), ("report", "broken")))] == 1
    assert ("streamer_downloads_started_total", (("report", "sales"),)) not in after  # rejected early
    assert after[("streamer_downloads_active", ())] == 0
    assert after[("streamer_downloads_rejected_total", ())] == 0


def test_metrics_rows_bytes_and_duration(start_server) -> None:
    server = start_server()

    response = httpx.get(server.url + "/reports/sales.csv", params=SALES_PARAMS, headers=IDENTITY)
    server.wait_for_log("outcome=complete")
    after = samples(server.url)

    rows = response.content.count(b"\n") - 1
    sales = (("report", "sales"),)
    assert rows > 0
    assert after[("streamer_downloads_started_total", sales)] == 1
    assert after[("streamer_downloads_finished_total", sales)] == 1
    assert after[("streamer_rows_sent_total", sales)] == rows
    assert after[("streamer_bytes_sent_total", sales)] == len(response.content)
    assert after[("streamer_download_duration_seconds_count", (("outcome", "complete"),))] == 1
    assert after[("streamer_downloads_active", ())] == 0


def test_metrics_count_client_disconnect(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "sleepy", "SELECT 1 AS x FROM pg_sleep(30)")
    server = start_server(
        STREAMER_DATABASE_URL=postgres_url,
        STREAMER_QUERIES_DIR=str(queries_dir),
        STREAMER_HEARTBEAT_SECONDS="0.2",
    )

    with httpx.stream("GET", server.url + "/reports/sleepy.csv", timeout=10) as response:
        next(response.iter_raw())
        during = samples(server.url)
    server.wait_for_log("outcome=client disconnected")
    after = samples(server.url)

    assert during[("streamer_downloads_active", ())] == 1
    assert after[("streamer_downloads_active", ())] == 0
    failed = ("streamer_downloads_failed_total", (("reason", "client_disconnected"), ("report", "sleepy")))
    assert after[failed] == 1


def test_metrics_need_token_when_tokens_set(start_server) -> None:
    server = start_server(STREAMER_API_TOKENS=TOKEN)

    anonymous = httpx.get(server.url + "/metrics")
    allowed = samples(server.url, headers={"Authorization": f"Bearer {TOKEN}"})

    assert anonymous.status_code == 401
    assert ("streamer_downloads_active", ()) in allowed
