"""Arrow string arrays turned into body bytes without a Python loop over the values.

Compute kernels release the GIL, so a chunk being rendered in a download's thread does not stall
the event loop's heartbeats for other downloads.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def concatenate(strings: pa.Array) -> bytes:
    """Return the UTF-8 bytes of all values of a string array, back to back, in one copy."""
    _, offsets_buffer, data = strings.buffers()
    if data is None or len(strings) == 0:
        return b""
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)
    start = offsets[strings.offset]
    end = offsets[strings.offset + len(strings)]
    return data[start:end].to_pybytes()


def join_lines(columns: list[pa.Array], separator: str, line_end: str) -> bytes:
    """Return the values of columns joined row by row with separator, each row ending in line_end."""
    lines = pc.binary_join_element_wise(*columns, separator)
    lines = pc.binary_join_element_wise(lines, "", line_end)
    return concatenate(lines)


def prefix_matches(column: pa.Array, pattern: str, prefix: str) -> pa.Array:
    """Return column with prefix put before each value that matches the regular expression."""
    matches = pc.match_substring_regex(column, pattern)
    return pc.if_else(matches, pc.binary_join_element_wise(prefix, column, ""), column)
