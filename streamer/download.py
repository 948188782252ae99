"""The parent's handle on one download's child process: start, receive, cancel, reap."""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import time
from multiprocessing.context import ForkServerContext

from sqlalchemy import text

from streamer import worker
from streamer.database import create_report_engine
from streamer.worker import Failed, Job, Message, Started

logger = logging.getLogger(__name__)

# How often a waiting parent checks that the child is still alive, in seconds.
POLL_SECONDS = 0.25
# How long a finished child may take to exit, and a killed one to be reaped, in seconds.
JOIN_SECONDS = 2.0

_context: ForkServerContext | None = None


def process_context() -> ForkServerContext:
    """Return the forkserver context, whose server has pandas and the drivers imported already.

    Plain fork is unsafe in a process with threads (the event loop's thread pool). Spawn would
    import pandas again for every download, which costs about a second.
    """
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        assert isinstance(context, ForkServerContext)
        context.set_forkserver_preload(["streamer.worker", "psycopg2"])
        _context = context
    return _context


def start_forkserver() -> None:
    """Start the forkserver now, so the first download does not wait for its imports."""
    from multiprocessing import forkserver

    process_context()
    forkserver.ensure_running()


class Download:
    """One child process running one job, and the bounded queue it sends its result through."""

    def __init__(self, job: Job, queue_chunks: int) -> None:
        context = process_context()
        self.job = job
        self.queue = context.Queue(maxsize=queue_chunks)
        self.process = context.Process(
            target=worker.run, args=(job, self.queue), name=f"streamer-{job.download_id}", daemon=True
        )
        self.backend_pid: int | None = None
        self.finished = False

    def start(self) -> None:
        self.process.start()
        # The parent only reads. Once its copy of the pipe's write end is closed, the child's is
        # the only one. A child that dies in the middle of a message then ends the pipe (EOF),
        # instead of leaving a read that waits for the rest of the message forever.
        # NOTE: `_writer` is a private attribute of multiprocessing.Queue (CPython 3.11).
        self.queue._writer.close()  # type: ignore[attr-defined]

    def receive(self, timeout: float) -> Message | None:
        """Return the child's next message, or None if none came within timeout seconds.

        Blocks, so callers on the event loop run it in a thread. A child that has exited without
        its final message yields a Failed message instead of a wait that never ends.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.queue.get(timeout=max(0.0, min(POLL_SECONDS, deadline - time.monotonic())))
            except queue.Empty:
                if not self.process.is_alive():
                    return self.receive_after_exit()
                if time.monotonic() >= deadline:
                    return None
                continue
            except (EOFError, OSError):
                return self.child_exited()
            return self.remember(message)

    def receive_after_exit(self) -> Message:
        # The child's queue thread flushes every message before the process exits, so anything it
        # sent is readable now.
        try:
            return self.remember(self.queue.get(timeout=POLL_SECONDS))
        except (queue.Empty, EOFError, OSError):
            return self.child_exited()

    def child_exited(self) -> Failed:
        """Return the failure of a child that ended without its final message."""
        self.process.join(JOIN_SECONDS)
        return Failed("ChildExited", describe_exit(self.process.exitcode))

    def remember(self, message: Message) -> Message:
        if isinstance(message, Started):
            self.backend_pid = message.backend_pid
        if isinstance(message, (worker.Finished, Failed)):
            self.finished = True
        return message

    def stop(self) -> None:
        """End the child and its statement, whatever state they are in, with every wait bounded.

        Blocks for up to a few seconds, so callers on the event loop run it in a thread.
        """
        if self.process.is_alive() and not self.finished:
            self.cancel_statement()
        self.reap()

    def close_queue(self) -> None:
        self.queue.close()
        self.queue.cancel_join_thread()

    def cancel_statement(self) -> None:
        """Cancel the child's running statement on the server.

        Killing the child alone leaves a statement that sends no rows (a long sort, pg_sleep)
        running on the server until it next tries to write to the dead connection.
        """
        if self.backend_pid is None:
            return
        engine = create_report_engine(self.job.database_url)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_cancel_backend(:pid)"), {"pid": self.backend_pid})
        except Exception as exc:  # a failed cancel must not stop the reaping
            logger.warning(
                "download %s: cancelling backend %s failed: %s", self.job.download_id, self.backend_pid, exc
            )
        finally:
            engine.dispose()

    def reap(self) -> None:
        """Wait for the child to exit, killing it when it was abandoned or does not exit in time.

        Children ignore SIGTERM, which a platform sends to every process at shutdown, so the step
        after the grace period is SIGKILL. An abandoned child's statement was cancelled first.
        """
        if self.finished:
            self.process.join(JOIN_SECONDS)
        self.drain()
        if self.process.is_alive():
            self.process.kill()
            self.process.join(JOIN_SECONDS)
        if self.process.is_alive():
            logger.error(
                "download %s: child %s did not exit after SIGKILL", self.job.download_id, self.process.pid
            )

    def drain(self) -> None:
        """Discard what the child still has in the queue, so a child blocked on put can exit."""
        try:
            while True:
                self.queue.get_nowait()
        except (queue.Empty, EOFError, OSError, ValueError):
            return


def describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else str(-exitcode)
        return f"The report process was killed by {name} before it finished."
    return f"The report process exited with code {exitcode} before it finished."
