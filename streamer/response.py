"""The HTTP response of one download: send the body, end the child however the response ends."""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from streamer import metrics
from streamer.catalog import Report
from streamer.stream import ReportFailed, ReportStream

logger = logging.getLogger(__name__)

# Marks a body that ended early. No data row can produce it: the CSV and TSV writers quote every
# value that contains a quote, so an unquoted first field never contains one, and a JSON Lines row
# starts with `{`.
FAILURE_MARKER = '#"streamer: download failed"'


def log_end(stream: ReportStream, report: Report) -> None:
    logger.info(
        "download %s ended: report=%s rows=%d bytes=%d duration=%.3fs outcome=%s",
        stream.download.job.download_id,
        report.name,
        stream.rows,
        stream.bytes_sent,
        stream.duration,
        stream.outcome,
    )
    metrics.download_ended(report.name, stream.outcome, stream.rows, stream.bytes_sent, stream.duration)


class ReportResponse(Response):
    """A streamed download that ends its child however the response ends.

    Starlette's StreamingResponse stops on a disconnect but leaves cleanup to the garbage
    collector. Here the child is stopped and the outcome logged before the response returns.
    """

    def __init__(
        self,
        stream: ReportStream,
        report: Report,
        media_type: str,
        headers: dict[str, str],
        on_end: Callable[[], None],
    ) -> None:
        self.stream = stream
        self.report = report
        self.on_end = on_end
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(self.send_body, send, task_group.cancel_scope)
                await self.wait_for_disconnect(receive)
                task_group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.stream.close()
                self.on_end()
                log_end(self.stream, self.report)

    async def send_body(self, send: Send, scope: anyio.CancelScope) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for block in self.stream:
                await send({"type": "http.response.body", "body": block, "more_body": True})
        except ReportFailed as exc:
            await self.abort(send, exc)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        scope.cancel()

    async def abort(self, send: Send, exc: ReportFailed) -> None:
        """Mark the body as incomplete, then end the connection without the final chunk."""
        download_id = self.stream.download.job.download_id
        logger.error(
            "download %s failed after %d bytes: %s", download_id, self.stream.bytes_sent, exc.failure.message
        )
        marker = self.stream.failure_bytes(f"{FAILURE_MARKER} download_id={download_id}")
        await send({"type": "http.response.body", "body": marker, "more_body": True})
        raise DownloadAborted(f"download {download_id} failed after the body began") from exc

    async def wait_for_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if self.stream.outcome == "pending":
                    self.stream.outcome = "client disconnected"
                return


class DownloadAborted(Exception):
    """Raised to make the server drop the connection, so clients see an incomplete transfer."""


class DownloadAbortedFilter(logging.Filter):
    """Drop uvicorn's traceback for a DownloadAborted: the failure is already logged in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BaseExceptionGroup):
            _, others = error.split(DownloadAborted)
            return others is not None
        return not isinstance(error, DownloadAborted)
