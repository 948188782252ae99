"""`streamer export`: run one report in a child process, as a download does, and write it out.

The output goes to a temporary file beside the target, renamed into place only when the report
has finished, so a failed or interrupted export leaves no partial file and never replaces an
existing one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from streamer.catalog import Report
from streamer.config import Settings
from streamer.download import Download
from streamer.errors import StreamerError
from streamer.formats import Writer
from streamer.worker import Chunk, Columns, Failed, Finished, Job

# How often the progress display refreshes while no chunk arrives, in seconds.
PROGRESS_SECONDS = 0.5


class ExportFailed(StreamerError):
    """The report failed, or its output could not be written."""


class Progress:
    """Rows, bytes, rate and elapsed time on stderr; shown only when stderr is a terminal."""

    def __init__(self, report: str, enabled: bool) -> None:
        self.bytes_written = 0
        # tqdm hides its line on a terminal that reports a size of 0 x 0 (a bare pseudo-terminal),
        # so the size falls back to 80 x 24 there.
        size = shutil.get_terminal_size()
        self.bar = tqdm(
            desc=report,
            unit=" rows",
            unit_scale=True,
            file=sys.stderr,
            disable=not enabled,
            ncols=size.columns,
            nrows=size.lines,
        )

    def add(self, rows: int, size: int) -> None:
        self.bytes_written += size
        self.bar.set_postfix_str(
            tqdm.format_sizeof(self.bytes_written, suffix="B", divisor=1000), refresh=False
        )
        self.bar.update(rows)

    def tick(self) -> None:
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def export(
    report: Report,
    bindings: dict[str, Any],
    settings: Settings,
    output: Writer,
    destination: Path | None,
    show_progress: bool,
) -> int:
    """Write report to destination (stdout when None) in the given format; return the row count."""
    job = Job(
        download_id=f"export-{secrets.token_hex(4)}",
        database_url=settings.effective_database_url,
        sql=report.sql.text,
        list_parameters=report.list_parameters,
        bindings=bindings,
        chunk_rows=settings.chunk_rows,
        statement_timeout_ms=round(timeout_seconds(report, settings) * 1000),
        postgres_copy=settings.postgres_copy,
    )
    download = Download(job, settings.queue_chunks)
    progress = Progress(report.name, show_progress)
    try:
        with open_output(destination) as sink:
            download.start()
            return copy_messages(download, output, sink, progress)
    finally:
        progress.close()
        download.stop()
        download.close_queue()


def timeout_seconds(report: Report, settings: Settings) -> float:
    return report.timeout_seconds if report.timeout_seconds is not None else settings.query_timeout_seconds


def copy_messages(download: Download, output: Writer, sink: IO[bytes], progress: Progress) -> int:
    """Write the child's header and chunks to sink until it finishes; raise ExportFailed on failure."""
    rows = 0
    while True:
        message = download.receive(PROGRESS_SECONDS)
        if message is None:
            progress.tick()
        elif isinstance(message, Columns):
            write(sink, output.header(message.names), progress, 0)
        elif isinstance(message, Chunk):
            rows += len(message.frame)
            write(sink, output.rows(message.frame, message.kinds), progress, len(message.frame))
        elif isinstance(message, Finished):
            write(sink, output.end(), progress, 0)
            return rows
        elif isinstance(message, Failed):
            raise ExportFailed(f"The report failed: {first_line(message.message)}", sqlstate=message.sqlstate)


def write(sink: IO[bytes], block: bytes, progress: Progress, rows: int) -> None:
    try:
        sink.write(block)
    except OSError as exc:
        raise ExportFailed(f"Writing the output failed: {exc.strerror or exc}.") from None
    progress.add(rows, len(block))


def first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def open_output(destination: Path | None) -> Iterator[IO[bytes]]:
    """Yield stdout, or a temporary file that replaces destination once the block succeeds."""
    if destination is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return

    folder = destination.parent
    if not folder.is_dir():
        raise ExportFailed(f"Cannot write {destination}: the folder {folder} does not exist.")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=folder)
    os.fchmod(descriptor, 0o666 & ~current_umask())  # mkstemp's 0600 would outlive the rename
    try:
        with os.fdopen(descriptor, "wb") as sink:
            yield sink
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
