"""Server-wide download state: how many run, whether new ones may start, and the shutdown clock."""

from __future__ import annotations

import math
import time

from streamer.errors import StreamerError

# Seconds a client should wait before retrying a rejected download.
RETRY_AFTER_SECONDS = 5


class TooManyDownloads(StreamerError):
    status_code = 429

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Too many downloads are running (the limit is {limit}): retry in {RETRY_AFTER_SECONDS} seconds.",
        )
        self.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class ShuttingDown(StreamerError):
    status_code = 503

    def __init__(self) -> None:
        super().__init__(f"The server is shutting down: retry in {RETRY_AFTER_SECONDS} seconds.")
        self.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class Lifecycle:
    """Counts running downloads against a limit and keeps the time shutdown began.

    Only the event loop's thread calls `acquire` and `release`, so a plain counter is safe.
    `begin_shutdown` may run in a signal handler: it only records the time.
    """

    def __init__(self, max_concurrent: int, shutdown_grace_seconds: float) -> None:
        self.max_concurrent = max_concurrent
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.active = 0
        self.shutdown_started: float | None = None

    def acquire(self) -> None:
        """Take a download slot, raising TooManyDownloads or ShuttingDown when none may start."""
        if self.shutting_down:
            raise ShuttingDown()
        if self.active >= self.max_concurrent:
            raise TooManyDownloads(self.max_concurrent)
        self.active += 1

    def release(self) -> None:
        self.active -= 1

    def begin_shutdown(self) -> None:
        if self.shutdown_started is None:
            self.shutdown_started = time.monotonic()

    @property
    def shutting_down(self) -> bool:
        return self.shutdown_started is not None

    def seconds_until_deadline(self) -> float:
        """Return how long running downloads may still go on: infinite unless shutting down."""
        if self.shutdown_started is None:
            return math.inf
        return self.shutdown_started + self.shutdown_grace_seconds - time.monotonic()
