"""The HTTP interface: list reports, stream one as a download, report health."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from streamer import demo, metrics
from streamer.access import TokenAccess
from streamer.catalog import Catalog, Report, ReportNotFound, load_catalog
from streamer.compression import Encoding, negotiate_encoding
from streamer.config import Settings
from streamer.download import Download, start_forkserver
from streamer.errors import StreamerError
from streamer.filenames import attachment
from streamer.formats import FORMATS, Writer
from streamer.lifecycle import Lifecycle, TooManyDownloads
from streamer.openapi import openapi_json
from streamer.options import split_options
from streamer.page import report_page
from streamer.params import MAX_LIST_ITEMS, ParameterError, bind
from streamer.response import ReportResponse, log_end
from streamer.stream import ReportFailed, ReportStream
from streamer.worker import Job

logger = logging.getLogger(__name__)

# How long a download may wait for the database to accept its query before the response starts.
# Well inside the 30 s a router such as Heroku's allows before the first byte.
START_WAIT_SECONDS = 3.0


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_environ()
    settings.check_access()
    if settings.allow_anonymous and not settings.api_tokens and not settings.uses_demo_database:
        logger.warning("STREAMER_ALLOW_ANONYMOUS=1: reports are served to anyone without a token")
    if settings.uses_demo_database:
        demo.ensure_demo_database(settings.demo_database)
    catalog = load_catalog(settings.queries_dir)

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/", report_page),
            Route("/healthz", healthz),
            Route("/metrics", metrics.metrics_endpoint),
            Route("/openapi.json", openapi_json),
            Route("/reports", list_reports),
            Route("/reports/{name}/validate", validate_parameters),
            Route("/reports/{filename}", download_report),
        ],
        middleware=[Middleware(TokenAccess, tokens=settings.api_tokens)],
        exception_handlers={
            StreamerError: render_error,  # type: ignore[dict-item]
            HTTPException: render_http_error,  # type: ignore[dict-item]
        },
    )
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.lifecycle = Lifecycle(settings.max_concurrent, settings.shutdown_grace_seconds)
    return app


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await anyio.to_thread.run_sync(start_forkserver)
    yield


async def render_error(request: Request, exc: StreamerError) -> Response:
    return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=exc.headers)


async def render_http_error(request: Request, exc: HTTPException) -> Response:
    """Render Starlette's own errors (no such route, wrong method) as JSON like every other error."""
    path = request.url.path[:200]
    messages = {
        404: f"No such path {path!r}: GET /reports lists the reports, /reports/NAME.csv downloads one.",
        405: f"Method {request.method} is not allowed on {path!r}: use GET.",
    }
    message = messages.get(exc.status_code, str(exc.detail))
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def healthz(request: Request) -> Response:
    lifecycle: Lifecycle = request.app.state.lifecycle
    if lifecycle.shutting_down:
        return JSONResponse({"status": "shutting down"}, status_code=503)
    return JSONResponse({"status": "ok", "downloads": lifecycle.active})


async def list_reports(request: Request) -> Response:
    catalog: Catalog = request.app.state.catalog
    return JSONResponse({"reports": [report.describe() for report in catalog]})


async def validate_parameters(request: Request) -> Response:
    """Check parameters exactly as a download would, without starting one."""
    report = request.app.state.catalog.get(request.path_params["name"])
    _, parameter_items = split_options(query_items(request.scope))
    bind(report.parameters, parameter_items)
    return JSONResponse({"valid": True})


async def download_report(request: Request) -> Response:
    lifecycle: Lifecycle = request.app.state.lifecycle
    report, output = find_report(request.app.state.catalog, request.path_params["filename"])
    options, parameter_items = split_options(query_items(request.scope))
    bindings = bind(report.parameters, parameter_items)
    writer = output.writer(options)
    encoding = negotiate_encoding(request.headers.get("accept-encoding"))
    try:
        lifecycle.acquire()
    except TooManyDownloads:
        metrics.download_rejected()
        raise
    try:
        stream = await start_download(request, report, bindings, writer, encoding)
    except BaseException:
        lifecycle.release()
        raise

    headers = {
        "Content-Disposition": attachment(report.name, report.parameters, bindings, output.extension),
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
        "X-Download-Id": stream.download.job.download_id,
        **encoding.headers,
    }
    return ReportResponse(stream, report, output.media_type, headers, on_end=lifecycle.release)


async def start_download(
    request: Request, report: Report, bindings: dict[str, Any], writer: Writer, encoding: Encoding
) -> ReportStream:
    """Start the child and wait until the database has accepted the query, or failed it."""
    settings: Settings = request.app.state.settings
    download_id = secrets.token_hex(6)
    timeout = report.timeout_seconds if report.timeout_seconds is not None else settings.query_timeout_seconds
    job = Job(
        download_id=download_id,
        database_url=settings.effective_database_url,
        sql=report.sql.text,
        list_parameters=report.list_parameters,
        bindings=bindings,
        chunk_rows=settings.chunk_rows,
        statement_timeout_ms=round(timeout * 1000),
        postgres_copy=settings.postgres_copy,
    )
    download = Download(job, settings.queue_chunks)
    lifecycle = request.app.state.lifecycle
    stream = ReportStream(download, writer, encoding, settings.heartbeat_seconds, lifecycle)
    logger.info("download %s started: report=%s client=%s", download_id, report.name, client_address(request))
    metrics.download_started(report.name)
    try:
        await stream.open(START_WAIT_SECONDS)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await stream.close()
        log_end(stream, report)
        if isinstance(exc, ReportFailed):
            logger.error("download %s failed before the body: %s", download_id, exc.failure.message)
        raise
    return stream


def find_report(catalog: Catalog, filename: str) -> tuple[Report, Any]:
    name, dot, extension = filename.rpartition(".")
    if not dot:
        raise ReportNotFound(
            f"Report path {filename[:100]!r} has no format: use /reports/NAME.csv.", report=filename[:100]
        )
    report = catalog.get(name)
    if extension not in FORMATS:
        known = ", ".join(f".{name}" for name in FORMATS)
        raise ReportNotFound(f"Format {extension[:20]!r} is not supported: use {known}.", report=name)
    return report, FORMATS[extension]


def query_items(scope: Scope) -> list[tuple[str, str]]:
    """Parse the raw query string strictly: invalid UTF-8 is an error, never a silent U+FFFD."""
    raw = scope.get("query_string", b"")
    try:
        return parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=MAX_LIST_ITEMS + 100,
        )
    except UnicodeError:
        raise ParameterError("The query string is not valid UTF-8 after percent-decoding.") from None
    except ValueError:
        raise ParameterError(
            f"The query string has too many fields: the maximum is {MAX_LIST_ITEMS}."
        ) from None


def client_address(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "unknown"
