"""Output formats: a chunk of text values to bytes, plus the heartbeat that readers skip.

Rendering runs in Arrow compute kernels, which release the GIL, so a chunk being written does not
stall the event loop's heartbeats for other downloads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class CSVFormat:
    """RFC 4180 CSV quoted the way PostgreSQL's `COPY ... (FORMAT csv)` quotes.

    NULL is an empty unquoted field and the empty string is `""`. A value is quoted when it is
    empty or contains the delimiter, a quote, CR or LF, or is exactly `\\.`.
    """

    extension: str = "csv"
    media_type: str = "text/csv; charset=utf-8"
    delimiter: str = ","
    line_end: str = "\n"

    @property
    def heartbeat(self) -> bytes:
        """Return a blank line, which pandas.read_csv and csv.DictReader skip between rows."""
        return self.line_end.encode()

    def header(self, names: Sequence[str]) -> bytes:
        return self.render_columns([pa.array([name], type=pa.string()) for name in names])

    def rows(self, chunk: pd.DataFrame) -> bytes:
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if table.num_rows == 0:
            return b""
        columns = [column.combine_chunks() for column in table.columns]
        if len(columns) == 1:
            # A row whose only field is NULL would be an empty line, and readers skip empty lines,
            # so a one-column NULL is written as "" and reads back as empty.
            columns = [pc.fill_null(columns[0], "")]
        return self.render_columns(columns)

    def render_columns(self, columns: list[pa.Array]) -> bytes:
        fields = [self.quote(column) for column in columns]
        lines = pc.binary_join_element_wise(*fields, self.delimiter)
        lines = pc.binary_join_element_wise(lines, "", self.line_end)
        return concatenate(lines)

    @property
    def special_characters(self) -> str:
        return "".join(sorted({self.delimiter, '"', "\r", "\n"}))

    def quote(self, column: pa.Array) -> pa.Array:
        if not self.may_need_quotes(column):
            return pc.fill_null(column, "")
        pattern = "[" + self.special_characters.replace("\\", "\\\\") + r"]|^$|^\\\.$"
        needs_quotes = pc.match_substring_regex(column, pattern)
        escaped = pc.replace_substring(column, '"', '""')
        quoted = pc.binary_join_element_wise('"', escaped, '"', "")
        return pc.fill_null(pc.if_else(needs_quotes, quoted, column), "")

    def may_need_quotes(self, column: pa.Array) -> bool:
        """Return whether any value of column might need quotes, checked over the whole column.

        Most columns (numbers, dates, codes) have no special character anywhere, and searching
        their bytes back to back is far cheaper than matching each value.
        """
        data = concatenate(column)
        if any(character.encode() in data for character in self.special_characters):
            return True
        special_values = pc.or_(pc.equal(column, ""), pc.equal(column, "\\."))
        return bool(pc.any(special_values).as_py())


def concatenate(strings: pa.Array) -> bytes:
    """Return the UTF-8 bytes of all values of a string array, back to back, in one copy."""
    _, offsets_buffer, data = strings.buffers()
    if data is None or len(strings) == 0:
        return b""
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)
    start = offsets[strings.offset]
    end = offsets[strings.offset + len(strings)]
    return data[start:end].to_pybytes()


FORMATS = {"csv": CSVFormat()}
