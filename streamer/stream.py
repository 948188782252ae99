"""The body of one download: the header, then each chunk as it arrives, with heartbeats between.

The child's queue is read, and each chunk rendered, in a thread of the download's own, so the
event loop only ever waits on a future with a timeout: it stays free for other downloads and for
`/healthz`, and sends a heartbeat whenever that timeout passes with no rows ready.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from streamer.download import Download
from streamer.errors import StreamerError
from streamer.formats import CSVFormat
from streamer.lifecycle import Lifecycle
from streamer.worker import Chunk, Columns, Failed, Finished, Message

logger = logging.getLogger(__name__)

# How often a waiting download checks whether the shutdown grace period has run out, in seconds.
SHUTDOWN_POLL_SECONDS = 1.0
SHUTDOWN_FAILURE = Failed("ShuttingDown", "The server shut down before the download finished.")


class ReportFailed(StreamerError):
    """The report's query failed; the status tells whether the request or the server is to blame."""

    def __init__(self, failure: Failed) -> None:
        self.failure = failure
        self.status_code = failure_status(failure)
        super().__init__(f"The report failed: {failure.message}", sqlstate=failure.sqlstate)


def failure_status(failure: Failed) -> int:
    sqlstate = failure.sqlstate or ""
    if failure.connecting or sqlstate.startswith("08") or failure is SHUTDOWN_FAILURE:
        return 503  # the database is unreachable
    if sqlstate.startswith("22"):
        return 400  # data exception: a parameter value the database rejects
    if sqlstate == "57014":
        return 504  # query_canceled, which statement_timeout raises
    return 500


class ReportStream:
    """Drive one Download and turn its messages into body bytes."""

    def __init__(
        self, download: Download, output: CSVFormat, heartbeat_seconds: float, lifecycle: Lifecycle
    ) -> None:
        self.download = download
        self.output = output
        self.heartbeat_seconds = heartbeat_seconds
        self.lifecycle = lifecycle
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"streamer-{download.job.download_id}"
        )
        self.columns: Columns | None = None
        self.pending: asyncio.Future[Message | bytes] | None = None
        self.held: bytes | Finished | None = None
        """The first rows (or the end) received before the response started, sent after the header."""
        self.rows = 0
        self.bytes_sent = 0
        self.started_at = time.monotonic()
        self.outcome = "pending"

    async def open(self, wait_seconds: float) -> None:
        """Start the child and wait up to wait_seconds for the columns and the first rows.

        A query that fails early (rejected by the database, an error in its first rows, a
        timeout shorter than the wait) fails here, before the response starts, so the client gets
        a real HTTP error status. Raises ReportFailed.
        """
        self.download.start()
        deadline = time.monotonic() + wait_seconds
        while self.held is None:
            message = await self.next_message(deadline - time.monotonic())
            if message is None:
                return
            self.handle_before_body(message)

    def handle_before_body(self, message: Message | bytes) -> None:
        if isinstance(message, Failed):
            self.outcome = "failed"
            raise ReportFailed(message)
        if isinstance(message, Columns):
            self.columns = message
        elif isinstance(message, (bytes, Finished)):
            self.held = message

    async def next_message(self, timeout: float) -> Message | bytes | None:
        """Return the next message (a chunk already rendered to bytes), or None on timeout."""
        if self.pending is None:
            loop = asyncio.get_running_loop()
            self.pending = loop.run_in_executor(self.executor, self.receive_and_render)
        done, _ = await asyncio.wait({self.pending}, timeout=max(0.0, timeout))
        if not done:
            return None
        message = self.pending.result()
        self.pending = None
        return message

    def receive_and_render(self) -> Message | bytes:
        message = self.download.receive(math.inf)
        assert message is not None  # an infinite wait returns a message or a Failed
        if isinstance(message, Chunk):
            self.rows += len(message.frame)
            return self.output.rows(message.frame)
        return message

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.columns is None:
            # NOTE: the columns are known well before a query's first row unless planning itself
            # is slow (for example waiting on a lock); no heartbeat can precede the header line.
            message = await self.next_message(SHUTDOWN_POLL_SECONDS)
            self.check_deadline()
            if message is not None:
                self.handle_before_body(message)
        yield self.count(self.output.header(self.columns.names))
        last_sent = time.monotonic()

        while True:
            message = await self.next_body_message(last_sent)
            if message is None:
                logger.debug("download %s: heartbeat", self.download.job.download_id)
                message = self.output.heartbeat
            if isinstance(message, bytes):
                if message:
                    yield self.count(message)
                    last_sent = time.monotonic()
            elif isinstance(message, Finished):
                self.outcome = "complete"
                return
            elif isinstance(message, Failed):
                self.outcome = "failed"
                raise ReportFailed(message)

    async def next_body_message(self, last_sent: float) -> Message | bytes | None:
        """Return the next message, or None once a heartbeat is due; fail at the shutdown deadline."""
        if self.held is not None:
            held, self.held = self.held, None
            return held
        while True:
            until_heartbeat = last_sent + self.heartbeat_seconds - time.monotonic()
            message = await self.next_message(min(until_heartbeat, SHUTDOWN_POLL_SECONDS))
            self.check_deadline()
            if message is not None or time.monotonic() - last_sent >= self.heartbeat_seconds:
                return message

    def check_deadline(self) -> None:
        """Fail the download once the shutdown grace period has run out."""
        if self.lifecycle.seconds_until_deadline() <= 0:
            self.outcome = "failed"
            raise ReportFailed(SHUTDOWN_FAILURE)

    def count(self, block: bytes) -> bytes:
        self.bytes_sent += len(block)
        return block

    async def close(self) -> None:
        """Stop the child and the reader thread; safe to call more than once."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.download.stop)
        if self.pending is not None:
            # The reader thread returns soon after the child is gone; let it end before the
            # queue it reads from is closed.
            await asyncio.wait({self.pending}, timeout=2.0)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.download.close_queue()

    @property
    def duration(self) -> float:
        return time.monotonic() - self.started_at
