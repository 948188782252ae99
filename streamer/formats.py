"""Output formats by file extension, and the writer protocol each download renders through.

A format is shared by all downloads; a writer renders one download and may keep state, such as
whether a row has been written yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from streamer.delimited import DelimitedWriter
from streamer.jsonlines import JSONLinesWriter
from streamer.kinds import Kind
from streamer.options import DownloadOptions, OptionError


class Writer(Protocol):
    def header(self, names: Sequence[str]) -> bytes:
        """Return what goes out before the first row, as soon as the columns are known."""
        ...

    def rows(self, chunk: pd.DataFrame, kinds: Sequence[Kind]) -> bytes:
        """Return one chunk of rows, given as a DataFrame of PostgreSQL-style text."""
        ...

    def heartbeat(self) -> bytes:
        """Return bytes that the format's readers skip, at least one byte long."""
        ...

    def end(self) -> bytes:
        """Return what follows the last row of a complete body."""
        ...

    def failure(self, marker: str) -> bytes:
        """Return the marker line that ends a body cut short, starting on a line of its own."""
        ...


@dataclass(frozen=True)
class Format:
    extension: str
    media_type: str
    create_writer: Callable[[DownloadOptions], Writer]

    def writer(self, options: DownloadOptions) -> Writer:
        """Return a new writer for one download. Raises OptionError for an option not available."""
        return self.create_writer(options)


def csv_writer(options: DownloadOptions) -> Writer:
    return DelimitedWriter(",", excel=options.excel)


def tsv_writer(options: DownloadOptions) -> Writer:
    reject_excel(options, "tsv")
    return DelimitedWriter("\t")


def jsonl_writer(options: DownloadOptions) -> Writer:
    reject_excel(options, "jsonl")
    return JSONLinesWriter()


def reject_excel(options: DownloadOptions, extension: str) -> None:
    if options.excel:
        raise OptionError(
            f"Option '_excel' applies to .csv downloads only, not .{extension}: "
            "request the report as .csv or leave the option out.",
            parameter="_excel",
        )


FORMATS = {
    output.extension: output
    for output in (
        Format("csv", "text/csv; charset=utf-8", csv_writer),
        Format("tsv", "text/tab-separated-values; charset=utf-8", tsv_writer),
        Format("jsonl", "application/jsonl; charset=utf-8", jsonl_writer),
    )
}
