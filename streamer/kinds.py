"""The kind of each result column, for output that depends on types: JSON Lines and Excel mode.

Values always travel as text. A kind states what that text is: a number JSON may carry as it is,
a boolean, a JSON document, or text that must be quoted. PostgreSQL columns get their kind from
the column's type OID once; SQLite stores a type per value, so each chunk gets kinds from the
Python values it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    INTEGER = "integer"
    DECIMAL = "decimal"
    """Exact decimal (PostgreSQL numeric), whose digits a JSON reader's float would round."""
    FLOAT = "float"
    MONEY = "money"
    BOOLEAN = "boolean"
    JSON = "json"
    TEXT = "text"

    @property
    def is_numeric(self) -> bool:
        return self in NUMERIC_KINDS


# The largest integer that an IEEE 754 double represents exactly. JavaScript's JSON.parse and many
# other readers parse every JSON number as a double.
MAX_SAFE_INTEGER = 2**53 - 1

NUMERIC_KINDS = frozenset({Kind.INTEGER, Kind.DECIMAL, Kind.FLOAT, Kind.MONEY})

# Built-in type OIDs from PostgreSQL's pg_type.dat, which are the same on every server.
POSTGRES_KINDS = {
    20: Kind.INTEGER,  # int8
    21: Kind.INTEGER,  # int2
    23: Kind.INTEGER,  # int4
    26: Kind.INTEGER,  # oid
    700: Kind.FLOAT,  # float4
    701: Kind.FLOAT,  # float8
    790: Kind.MONEY,
    1700: Kind.DECIMAL,  # numeric
    16: Kind.BOOLEAN,
    114: Kind.JSON,
    3802: Kind.JSON,  # jsonb
}


def postgres_kinds(type_codes: Sequence[Any]) -> tuple[Kind, ...]:
    """Return the kind of each column from its type OID; other types, arrays included, are text."""
    return tuple(POSTGRES_KINDS.get(code, Kind.TEXT) for code in type_codes)


def value_kinds(columns: Sequence[Sequence[Any]]) -> tuple[Kind, ...]:
    """Return the kind of each column of Python values, as a driver without type OIDs returns them.

    A column whose non-NULL values are all integers is INTEGER; integers mixed with floats are
    FLOAT, because both print as JSON numbers, unless an integer is too large for a JSON reader's
    double. Anything else, or any mix with text, is TEXT.
    """
    return tuple(kind_of_values(values) for values in columns)


def kind_of_values(values: Sequence[Any]) -> Kind:
    types = {type(value) for value in values if value is not None}
    if types and types <= {int}:
        return Kind.INTEGER
    if types and types <= {int, float} and all_safe_integers(values):
        return Kind.FLOAT
    return Kind.TEXT


def all_safe_integers(values: Sequence[Any]) -> bool:
    return all(abs(value) <= MAX_SAFE_INTEGER for value in values if type(value) is int)
