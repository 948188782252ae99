"""JSON Lines output: one JSON object per row, keyed by column name, with typed values.

Rows are separated by a line feed written before every row but the first, and the body ends with
one line feed after the last row. So the current line is always open, and a heartbeat (spaces,
which JSON allows around a value) never forms a line of its own once a row has been written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from streamer.arrowtext import concatenate
from streamer.kinds import MAX_SAFE_INTEGER, Kind
from streamer.pgarrays import ArraySyntaxError, Element, parse_array

FLOAT_SPECIALS = pa.array(["NaN", "Infinity", "-Infinity"], type=pa.string())
# JSON string escapes for the characters a JSON string cannot contain as they are (RFC 8259 §7).
SHORT_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
CONTROL_CHARACTERS = r"[\x00-\x1f]"


@dataclass
class JSONLinesWriter:
    keys: list[str] = field(default_factory=list)
    """Each column's key, JSON-encoded with its colon; a repeated name gets a suffix `.1`, `.2`."""
    rows_written: bool = False
    heartbeats_written: bool = False

    def header(self, names: Sequence[str]) -> bytes:
        self.keys = [json.dumps(name, ensure_ascii=False) + ":" for name in unique_names(names)]
        return b""

    def rows(self, chunk: pd.DataFrame, kinds: Sequence[Kind]) -> bytes:
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if table.num_rows == 0:
            return b""
        parts: list[pa.Array | str] = []
        for position, (column, kind) in enumerate(zip(table.columns, kinds, strict=True)):
            parts.append(("\n{" if position == 0 else ",") + self.keys[position])
            parts.append(json_values(column.combine_chunks(), kind))
        parts.append("}")
        body = concatenate(pc.binary_join_element_wise(*parts, ""))
        if not self.rows_written:
            body = body[1:]  # the first row starts the body, or the line the heartbeats opened
        self.rows_written = True
        return body

    def heartbeat(self) -> bytes:
        # NOTE: if no row follows, the body is one line of spaces, which a strict line-by-line
        # json.loads rejects; pandas.read_json(lines=True) reads it as no rows.
        self.heartbeats_written = True
        return b" "

    def end(self) -> bytes:
        return b"\n" if self.rows_written else b""

    def failure(self, marker: str) -> bytes:
        opened = self.rows_written or self.heartbeats_written
        return (("\n" if opened else "") + marker + "\n").encode()


def unique_names(names: Sequence[str]) -> list[str]:
    """Return names with each repeat renamed `name.1`, `name.2`, ..., skipping names in use."""
    all_names = set(names)
    used: set[str] = set()
    result: list[str] = []
    for name in names:
        unique = name
        suffix = 0
        while unique in used or (unique != name and unique in all_names):
            suffix += 1
            unique = f"{name}.{suffix}"
        used.add(unique)
        result.append(unique)
    return result


def json_values(column: pa.Array, kind: Kind) -> pa.Array:
    """Return the JSON text of each value of a column of PostgreSQL-style text; NULL is `null`."""
    if kind is Kind.INTEGER:
        values = numbers_unless(column, beyond_safe_integers(column))
    elif kind is Kind.FLOAT:
        values = numbers_unless(column, pc.is_in(column, value_set=FLOAT_SPECIALS))
    elif kind is Kind.BOOLEAN:
        values = pc.if_else(pc.equal(column, "t"), "true", "false")
    elif kind is Kind.JSON:
        # Inside a valid JSON text, CR and LF can only be whitespace between tokens.
        values = pc.replace_substring_regex(column, "[\r\n]", " ")
    elif kind.element is not None:
        # Arrays are rare and short next to scalars, so a Python loop over them is cheap enough.
        texts = [None if text is None else array_json(text, kind.element) for text in column.to_pylist()]
        values = pa.array(texts, type=pa.string())
    else:
        values = json_strings(column)
    return pc.fill_null(values, "null")


def array_json(text: str, element_kind: Kind) -> str:
    """Return a PostgreSQL array as a JSON array, or as a JSON string if it has explicit bounds."""
    try:
        elements = parse_array(text)
    except ArraySyntaxError:
        return json.dumps(text, ensure_ascii=False)
    return element_json(elements, element_kind)


def element_json(element: Element, kind: Kind) -> str:
    """Return one array element by the same rules as a column of its kind."""
    if element is None:
        return "null"
    if isinstance(element, list):
        return "[" + ",".join(element_json(item, kind) for item in element) + "]"
    if kind is Kind.INTEGER and abs(int(element)) <= MAX_SAFE_INTEGER:
        return element
    if kind is Kind.FLOAT and element not in ("NaN", "Infinity", "-Infinity"):
        return element
    if kind is Kind.BOOLEAN:
        return "true" if element == "t" else "false"
    if kind is Kind.JSON:
        return element.replace("\r", " ").replace("\n", " ")
    return json.dumps(element, ensure_ascii=False)


def beyond_safe_integers(column: pa.Array) -> pa.Array:
    numbers = pc.cast(column, pa.int64())
    return pc.or_(pc.greater(numbers, MAX_SAFE_INTEGER), pc.less(numbers, -MAX_SAFE_INTEGER))


def numbers_unless(column: pa.Array, as_strings: pa.Array) -> pa.Array:
    return pc.if_else(as_strings, json_strings(column), column)


def json_strings(column: pa.Array) -> pa.Array:
    escaped = pc.replace_substring(column, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    if pc.any(pc.match_substring_regex(escaped, CONTROL_CHARACTERS)).as_py():
        for code in range(0x20):
            character = chr(code)
            escape = SHORT_ESCAPES.get(character, f"\\u{code:04x}")
            escaped = pc.replace_substring(escaped, character, escape)
    return pc.binary_join_element_wise('"', escaped, '"', "")
