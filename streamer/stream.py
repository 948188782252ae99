"""The body of one download: the header, then each chunk as it arrives, with heartbeats between.

The child's queue is read, and each chunk rendered, in a thread of the download's own. The event
loop only ever waits on that thread's future with a timeout, so it stays free for other downloads
and for `/healthz`, and it sends a heartbeat whenever the timeout passes with no rows ready.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from streamer.compression import Encoding
from streamer.download import Download
from streamer.errors import StreamerError
from streamer.formats import Writer
from streamer.lifecycle import Lifecycle
from streamer.worker import Chunk, Columns, Failed, Finished, Message

logger = logging.getLogger(__name__)

# How often a waiting download checks whether the shutdown grace period has run out, in seconds.
SHUTDOWN_POLL_SECONDS = 1.0
SHUTDOWN_FAILURE = Failed("ShuttingDown", "The server shut down before the download finished.")


@dataclass(frozen=True)
class Header:
    """The encoded header, made in the render thread so it enters the encoding before any row."""

    data: bytes


Block = Message | Header | bytes


class ReportFailed(StreamerError):
    """The report's query failed: a 4xx status blames the request, a 5xx status the server."""

    def __init__(self, failure: Failed) -> None:
        self.failure = failure
        self.status_code = failure_status(failure)
        super().__init__(f"The report failed: {failure.message}", sqlstate=failure.sqlstate)


def failure_status(failure: Failed) -> int:
    sqlstate = failure.sqlstate or ""
    if failure.connecting or sqlstate.startswith("08") or failure is SHUTDOWN_FAILURE:
        return 503  # the database is unreachable, or the server is going away
    if sqlstate.startswith("22"):
        return 400  # data exception: a parameter value the database rejects
    if sqlstate == "57014":
        return 504  # query_canceled, which statement_timeout raises
    return 500


class ReportStream:
    """Drive one Download and turn its messages into body bytes, encoded for the wire."""

    def __init__(
        self,
        download: Download,
        writer: Writer,
        encoding: Encoding,
        heartbeat_seconds: float,
        lifecycle: Lifecycle,
    ) -> None:
        self.download = download
        self.writer = writer
        self.encoding = encoding
        self.heartbeat_seconds = heartbeat_seconds
        self.lifecycle = lifecycle
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"streamer-{download.job.download_id}"
        )
        self.columns: Columns | None = None
        self.pending: asyncio.Future[Block] | None = None
        self.held: list[Block] = []
        """Blocks received before the response started (header, first rows), sent first."""
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
        while not any(isinstance(block, (bytes, Finished)) for block in self.held):
            block = await self.next_message(deadline - time.monotonic())
            if block is None:
                return
            self.hold(block)

    def hold(self, block: Block) -> None:
        if isinstance(block, Failed):
            self.outcome = "failed"
            raise ReportFailed(block)
        if isinstance(block, (Header, bytes, Finished)):
            self.held.append(block)

    async def next_message(self, timeout: float) -> Block | None:
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

    def receive_and_render(self) -> Block:
        message = self.download.receive(math.inf)
        assert message is not None  # an infinite wait returns a message or a Failed
        if isinstance(message, Chunk):
            self.rows += len(message.frame)
            return self.encode(self.writer.rows(message.frame, message.kinds))
        if isinstance(message, Columns):
            self.columns = message
            return Header(self.encode(self.writer.header(message.names)))
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
        while not any(isinstance(block, Header) for block in self.held):
            # NOTE: no heartbeat can precede the header line. The columns are known well before
            # a query's first row, unless planning itself is slow (for example waiting on a lock).
            block = await self.next_message(SHUTDOWN_POLL_SECONDS)
            self.check_deadline()
            if block is not None:
                self.hold(block)
        last_sent = time.monotonic()

        while True:
            block = await self.next_block(last_sent)
            if block is None:
                logger.debug("download %s: heartbeat", self.download.job.download_id)
                block = await self.heartbeat()
            if isinstance(block, Header):
                block = block.data
            if isinstance(block, bytes):
                if block:
                    yield self.count(block)
                    last_sent = time.monotonic()
            elif isinstance(block, Finished):
                tail = self.encoding.finish(self.writer.end())
                if tail:
                    yield self.count(tail)
                self.outcome = "complete"
                return
            elif isinstance(block, Failed):
                self.outcome = "failed"
                raise ReportFailed(block)

    async def next_block(self, last_sent: float) -> Block | None:
        """Return the next block, or None once a heartbeat is due; fail at the shutdown deadline."""
        if self.held:
            return self.held.pop(0)
        while True:
            until_heartbeat = last_sent + self.heartbeat_seconds - time.monotonic()
            block = await self.next_message(min(until_heartbeat, SHUTDOWN_POLL_SECONDS))
            self.check_deadline()
            if block is not None or time.monotonic() - last_sent >= self.heartbeat_seconds:
                return block

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
