"""Prometheus metrics for downloads, served as text at GET /metrics.

The metrics live in prometheus_client's default registry, which also carries the process
collectors (memory, CPU, open files) of the web process. The web process runs one event loop, so
no multiprocess mode is needed: the child processes report through the parent.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response

# Downloads run from milliseconds to an hour, so the buckets span that range.
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

DOWNLOADS_STARTED = Counter(
    "streamer_downloads_started", "Downloads whose parameters were valid and whose child started.", ["report"]
)
DOWNLOADS_FINISHED = Counter(
    "streamer_downloads_finished", "Downloads that sent their whole result.", ["report"]
)
DOWNLOADS_FAILED = Counter(
    "streamer_downloads_failed",
    "Downloads that ended without their whole result, by reason: query_failed (the database or "
    "the child failed), client_disconnected, or interrupted (the server stopped the response).",
    ["report", "reason"],
)
DOWNLOADS_REJECTED = Counter(
    "streamer_downloads_rejected",
    "Downloads rejected with HTTP 429 because the concurrency limit was reached.",
)
DOWNLOADS_ACTIVE = Gauge("streamer_downloads_active", "Downloads whose child is running or being reaped.")
ROWS_SENT = Counter("streamer_rows_sent", "Data rows sent to clients.", ["report"])
BYTES_SENT = Counter("streamer_bytes_sent", "Body bytes sent to clients, heartbeats included.", ["report"])
DOWNLOAD_DURATION = Histogram(
    "streamer_download_duration_seconds",
    "Time from the start of a download to the end of its response.",
    ["outcome"],
    buckets=DURATION_BUCKETS,
)

# The outcomes a ReportStream ends with, mapped to the reason label of DOWNLOADS_FAILED.
FAILURE_REASONS = {"failed": "query_failed", "client disconnected": "client_disconnected"}


def download_started(report: str) -> None:
    DOWNLOADS_STARTED.labels(report).inc()
    DOWNLOADS_ACTIVE.inc()


def download_ended(report: str, outcome: str, rows: int, bytes_sent: int, duration: float) -> None:
    """Count one download that download_started counted, once its child has been reaped."""
    DOWNLOADS_ACTIVE.dec()
    ROWS_SENT.labels(report).inc(rows)
    BYTES_SENT.labels(report).inc(bytes_sent)
    if outcome == "complete":
        DOWNLOADS_FINISHED.labels(report).inc()
        DOWNLOAD_DURATION.labels("complete").observe(duration)
        return

    reason = FAILURE_REASONS.get(outcome, "interrupted")
    DOWNLOADS_FAILED.labels(report, reason).inc()
    DOWNLOAD_DURATION.labels(reason).observe(duration)


def download_rejected() -> None:
    """Count a download turned away with HTTP 429 because too many downloads are running."""
    DOWNLOADS_REJECTED.inc()


async def metrics_endpoint(request: Request) -> Response:
    """Serve the metrics in the format the scraper's Accept header requests (Prometheus text or OpenMetrics)."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(REGISTRY), media_type=content_type)
