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

from streamer.compression import Encoding
from streamer.download import Download
from streamer.errors import StreamerError
from streamer.formats import Writer
from streamer.worker import Chunk, Columns, Failed, Finished, Message, Started

logger = logging.getLogger(__name__)


class ReportFailed(StreamerError):
    """The report's query failed; the status tells whether the request or the server is to blame."""

    def __init__(self, failure: Failed) -> None:
        self.failure = failure
        self.status_code = failure_status(failure)
        super().__init__(f"The report failed: {failure.message}", sqlstate=failure.sqlstate)


def failure_status(failure: Failed) -> int:
    sqlstate = failure.sqlstate or ""
    if sqlstate.startswith("22"):
        return 400  # data exception: a parameter value the database rejects
    if sqlstate == "57014":
        return 504  # query_canceled, which statement_timeout raises
    if sqlstate.startswith("08") or (failure.error_type == "OperationalError" and not sqlstate):
        return 503  # the database is unreachable
    return 500


class ReportStream:
    """Drive one Download and turn its messages into body bytes, encoded for the wire."""

    def __init__(
        self, download: Download, writer: Writer, encoding: Encoding, heartbeat_seconds: float
    ) -> None:
        self.download = download
        self.writer = writer
        self.encoding = encoding
        self.heartbeat_seconds = heartbeat_seconds
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"streamer-{download.job.download_id}"
        )
        self.columns: Columns | None = None
        self.pending: asyncio.Future[Message | bytes] | None = None
        self.rows = 0
        self.bytes_sent = 0
        self.started_at = time.monotonic()
        self.outcome = "pending"

    async def open(self, wait_seconds: float) -> None:
        """Start the child and wait up to wait_seconds for the result's columns.

        A query the database rejects fails here, before the response starts, so the client gets
        a real HTTP error status. Raises ReportFailed.
        """
        self.download.start()
        deadline = time.monotonic() + wait_seconds
        while self.columns is None:
            message = await self.next_message(deadline - time.monotonic())
            if message is None:
                return
            self.handle_before_body(message)

    def handle_before_body(self, message: Message | bytes) -> None:
        if isinstance(message, Columns):
            self.columns = message
        elif isinstance(message, Failed):
            self.outcome = "failed"
            raise ReportFailed(message)
        elif not isinstance(message, Started):
            raise RuntimeError(f"unexpected message before the columns: {message!r}")

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
            return self.encode(self.writer.rows(message.frame, message.kinds))
        return message

    def encode(self, data: bytes) -> bytes:
        # Empty data stays empty: an empty block sends nothing, so it never counts as a heartbeat.
        return self.encoding.encode(data) if data else b""

    async def heartbeat(self) -> bytes:
        if not self.encoding.compresses:
            return self.writer.heartbeat()
        # The render thread may be compressing a chunk with the same compressor right now.
        return await asyncio.to_thread(self.encoding.flush)

    def failure_bytes(self, marker: str) -> bytes:
        """Return the encoded marker line that ends a body cut short."""
        return self.encode(self.writer.failure(marker))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.columns is None:
            # NOTE: the columns are known well before a query's first row unless planning itself
            # is slow (for example waiting on a lock); no heartbeat can precede the header line.
            message = await self.next_message(math.inf)
            self.handle_before_body(message)  # type: ignore[arg-type]
        header = self.encode(self.writer.header(self.columns.names))
        if header:
            yield self.count(header)
        last_sent = time.monotonic()

        while True:
            message = await self.next_message(last_sent + self.heartbeat_seconds - time.monotonic())
            if message is None:
                logger.debug("download %s: heartbeat", self.download.job.download_id)
                yield self.count(await self.heartbeat())
                last_sent = time.monotonic()
            elif isinstance(message, bytes) and message:
                yield self.count(message)
                last_sent = time.monotonic()
            elif isinstance(message, Finished):
                tail = self.encoding.finish(self.writer.end())
                if tail:
                    yield self.count(tail)
                self.outcome = "complete"
                return
            elif isinstance(message, Failed):
                self.outcome = "failed"
                raise ReportFailed(message)

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
