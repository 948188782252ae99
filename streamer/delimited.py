"""CSV and tab-separated output, quoted the way PostgreSQL's `COPY ... (FORMAT csv)` quotes.

NULL is an empty unquoted field and the empty string is `""`. A value is quoted when it is empty
or contains the delimiter, a quote, CR or LF, or, in one-column output, is exactly `\\.` (COPY's
end-of-data line). TSV uses the same quoting with a tab as the delimiter, which Python's
`excel-tab` dialect and `pandas.read_csv(sep="\\t")` read back exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from streamer.arrowtext import concatenate, join_lines, prefix_matches
from streamer.kinds import Kind

UTF8_BOM = "\ufeff"
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection). A leading
# apostrophe makes the cell text.
FORMULA_START = r"^[=+\-@\t\r]"


@dataclass
class DelimitedWriter:
    """Render one download as delimited text; `excel` selects the spreadsheet-ready variant.

    The Excel variant starts with a UTF-8 byte-order mark, so that Excel decodes UTF-8 instead of
    the system code page, ends lines with CRLF, and neutralises formulas in every cell except numeric columns.
    """

    delimiter: str
    excel: bool = False

    @property
    def line_end(self) -> str:
        return "\r\n" if self.excel else "\n"

    def header(self, names: Sequence[str]) -> bytes:
        single = len(names) == 1
        columns = [self.cells(pa.array([name], type=pa.string()), Kind.TEXT, single) for name in names]
        body = join_lines(columns, self.delimiter, self.line_end)
        return UTF8_BOM.encode() + body if self.excel else body

    def rows(self, chunk: pd.DataFrame, kinds: Sequence[Kind]) -> bytes:
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if table.num_rows == 0:
            return b""
        columns = [column.combine_chunks() for column in table.columns]
        if len(columns) == 1:
            # A row whose only field is NULL would be an empty line, and readers skip empty lines,
            # so a one-column NULL is written as "" and reads back as empty.
            columns = [pc.fill_null(columns[0], "")]
        single = len(columns) == 1
        cells = [self.cells(column, kind, single) for column, kind in zip(columns, kinds, strict=True)]
        return join_lines(cells, self.delimiter, self.line_end)

    def heartbeat(self) -> bytes:
        """Return a blank line, which pandas.read_csv and csv.DictReader skip between rows."""
        return self.line_end.encode()

    def end(self) -> bytes:
        return b""

    def failure(self, marker: str) -> bytes:
        # Every earlier piece of the body ends with a line end, so the marker starts a line.
        return (marker + self.line_end).encode()

    def cells(self, column: pa.Array, kind: Kind, single: bool) -> pa.Array:
        if self.excel and not kind.is_numeric:
            column = prefix_matches(column, FORMULA_START, "'")
        return self.quote(column, single)

    def quote(self, column: pa.Array, single: bool) -> pa.Array:
        special = "".join(sorted({self.delimiter, '"', "\r", "\n"}))
        if not may_need_quotes(column, special, single):
            return pc.fill_null(column, "")
        pattern = "[" + special.replace("\\", "\\\\") + "]|^$"
        if single:
            pattern += r"|^\\\.$"
        needs_quotes = pc.match_substring_regex(column, pattern)
        escaped = pc.replace_substring(column, '"', '""')
        quoted = pc.binary_join_element_wise('"', escaped, '"', "")
        return pc.fill_null(pc.if_else(needs_quotes, quoted, column), "")


def may_need_quotes(column: pa.Array, special: str, single: bool) -> bool:
    """Return whether any value of column might need quotes, checked over the whole column.

    Most columns (numbers, dates, codes) contain no special character at all, and searching their
    bytes back to back is about ten times cheaper than matching each value.
    """
    data = concatenate(column)
    if any(character.encode() in data for character in special):
        return True
    special_values = pc.equal(column, "")
    if single:
        special_values = pc.or_(special_values, pc.equal(column, "\\."))
    return bool(pc.any(special_values).as_py())
