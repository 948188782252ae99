"""The text of each database value, made in the child so that every chunk renders the same.

On PostgreSQL the driver hands over the server's own text output for every type (what `COPY ...
CSV` prints), in a session with fixed time zone and formats. Other databases go through
`to_text`, which renders Python values in the same style.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
from sqlalchemy.engine import Connection

# Session settings that fix how PostgreSQL prints values, whatever the server's defaults are.
POSTGRES_SESSION = (
    "SET TimeZone TO 'UTC'",
    "SET DateStyle TO 'ISO, YMD'",
    "SET IntervalStyle TO 'postgres'",
    "SET extra_float_digits TO 1",
    "SET bytea_output TO 'hex'",
)


def is_postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def prepare_session(connection: Connection) -> None:
    """Set the session up so that values arrive as their canonical text."""
    if not is_postgres(connection):
        return
    import psycopg2.extensions

    for statement in POSTGRES_SESSION:
        connection.exec_driver_sql(statement)

    # Types psycopg2 has no typecaster for (enums, extensions) already arrive as text. For the
    # others, a typecaster registered on this connection returns the text unconverted. That covers
    # psycopg2's global typecasters and the ones SQLAlchemy registers per connection (uuid, uuid[]).
    dbapi_connection = connection.connection.dbapi_connection
    connection_oids = getattr(dbapi_connection, "string_types", {})
    known_oids = tuple({*psycopg2.extensions.string_types, *connection_oids})
    raw = psycopg2.extensions.new_type(known_oids, "STREAMER_RAW_TEXT", lambda value, cursor: value)
    psycopg2.extensions.register_type(raw, dbapi_connection)


def to_text(value: Any) -> str | None:
    """Render a Python value from a DB-API driver as PostgreSQL would print it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, Decimal):
        return "NaN" if value.is_nan() else format(value, "f")
    if isinstance(value, dt.datetime):
        return datetime_text(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def float_text(value: float) -> str:
    """Return the shortest text that reads back to value, in PostgreSQL's spelling of specials."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def datetime_text(value: dt.datetime) -> str:
    text = value.isoformat(sep=" ")
    # PostgreSQL prints a whole-hour offset as +00, not +00:00.
    if value.tzinfo is not None and text.endswith(":00") and text[-6] in "+-":
        text = text[:-3]
    return text


def build_chunk(rows: Sequence[Sequence[Any]], column_count: int, raw_text: bool) -> pd.DataFrame:
    """Return rows as a DataFrame of Arrow strings with positional column labels.

    Labels are positions, not names, because a query may return the same name twice.
    """
    columns = list(zip(*rows, strict=True)) if rows else [()] * column_count
    arrays = []
    for values in columns:
        texts = values if raw_text else [to_text(value) for value in values]
        arrays.append(pa.array(texts, type=pa.string()))
    labels = [str(position) for position in range(column_count)]
    return pa.Table.from_arrays(arrays, names=labels).to_pandas(types_mapper=pd.ArrowDtype)


def bindable(connection: Connection, bindings: dict[str, Any]) -> dict[str, Any]:
    """Return bindings the connection's driver takes as they are.

    PostgreSQL's driver binds dates and times natively. SQLite has no such types and keeps them as
    ISO text, so they are bound as text in the same spelling, which compares in time order.
    """
    if is_postgres(connection):
        return bindings
    return {name: sqlite_value(value) for name, value in bindings.items()}


def sqlite_value(value: Any) -> Any:
    if isinstance(value, list):
        return [sqlite_value(item) for item in value]
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
