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
    INTEGER_ARRAY = "integer[]"
    DECIMAL_ARRAY = "decimal[]"
    FLOAT_ARRAY = "float[]"
    MONEY_ARRAY = "money[]"
    BOOLEAN_ARRAY = "boolean[]"
    JSON_ARRAY = "json[]"
    TEXT_ARRAY = "text[]"

    @property
    def is_numeric(self) -> bool:
        return self in NUMERIC_KINDS

    @property
    def element(self) -> Kind | None:
        """The kind of an array kind's elements; None for a kind that is not an array."""
        return Kind(self.value[:-2]) if self.value.endswith("[]") else None


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
    1005: Kind.INTEGER_ARRAY,  # int2[]
    1007: Kind.INTEGER_ARRAY,  # int4[]
    1016: Kind.INTEGER_ARRAY,  # int8[]
    1028: Kind.INTEGER_ARRAY,  # oid[]
    1021: Kind.FLOAT_ARRAY,  # float4[]
    1022: Kind.FLOAT_ARRAY,  # float8[]
    1231: Kind.DECIMAL_ARRAY,  # numeric[]
    791: Kind.MONEY_ARRAY,
    1000: Kind.BOOLEAN_ARRAY,
    199: Kind.JSON_ARRAY,
    3807: Kind.JSON_ARRAY,  # jsonb[]
    # Arrays of text, varchar, char, name, bytea, date, time, timetz, timestamp, timestamptz,
    # interval, uuid, inet and cidr, whose elements are separated by commas (box[] uses semicolons).
    **dict.fromkeys(
        (1009, 1015, 1014, 1003, 1001, 1182, 1183, 1270, 1115, 1185, 1187, 2951, 1041, 651), Kind.TEXT_ARRAY
    ),
}


def postgres_kinds(type_codes: Sequence[Any]) -> tuple[Kind, ...]:
    """Return the kind of each column from its type OID; other types, other arrays included, are text."""
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
