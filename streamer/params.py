"""Typed report parameters: declarations, and parsing request values into bound Python values."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from streamer.errors import StreamerError

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
INTEGER = re.compile(r"[+-]?[0-9]+\Z")
DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
ISO_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+)?(Z|[+-][0-9:]+)?\Z")
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "on", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "off", "0"})

# Bounds on what a request may bind, so that a hostile query string cannot make the database or
# the child process build huge statements.
MAX_LIST_ITEMS = 10_000
MAX_VALUE_CHARS = 10_000
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

# Suffix of the extra binding that contains a list parameter's item count, so that a report can make
# a list filter optional: `(:ids__count = 0 OR id IN :ids)`.
COUNT_SUFFIX = "__count"


class ParameterError(StreamerError):
    """A request's parameter is missing, unknown or invalid."""

    status_code = 400


def shorten(raw: str, limit: int = 60) -> str:
    """Return raw quoted for a message, cut to limit characters so that huge values stay readable."""
    if len(raw) <= limit:
        return repr(raw)
    return f"{raw[:limit]!r}... ({len(raw)} characters)"


def reason(exc: ValueError, raw: str) -> str:
    """Return the parser's own explanation, such as "day is out of range for month", if it adds one.

    A value in the right format can still be invalid (2024-02-30), and then the expected format
    alone would not tell the user what is wrong.
    """
    text = str(exc)
    if not text or raw in text or len(text) > 80:
        return ""
    return f" ({text})"


def parse_int(raw: str) -> int:
    if not INTEGER.match(raw):
        raise ValueError
    value = int(raw)
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise ValueError
    return value


def parse_float(raw: str) -> float:
    if not DECIMAL.match(raw):
        raise ValueError
    value = float(raw)
    if value in (float("inf"), float("-inf")):
        raise ValueError
    return value


def parse_date(raw: str) -> date:
    if not ISO_DATE.match(raw):
        raise ValueError
    return date.fromisoformat(raw)


def parse_datetime(raw: str) -> datetime:
    if not ISO_DATETIME.match(raw):
        raise ValueError
    return datetime.fromisoformat(raw)


def parse_bool(raw: str) -> bool:
    word = raw.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError


def parse_text(raw: str) -> str:
    # PostgreSQL text cannot contain NUL, and the driver would fail with a less clear error.
    if "\x00" in raw:
        raise ValueError
    return raw


@dataclass(frozen=True)
class ScalarType:
    name: str
    parse: Callable[[str], Any]
    expected: str
    """The form of a valid value, for error messages."""


SCALAR_TYPES = {
    scalar.name: scalar
    for scalar in (
        ScalarType("int", parse_int, "a whole number between -2^63 and 2^63-1"),
        ScalarType("float", parse_float, "a finite decimal number such as 12.5 or 1e-3"),
        ScalarType("date", parse_date, "a date as YYYY-MM-DD"),
        ScalarType("datetime", parse_datetime, "a date and time as YYYY-MM-DDTHH:MM[:SS][+HH:MM]"),
        ScalarType("bool", parse_bool, "true or false (also yes/no, on/off, 1/0)"),
        ScalarType("text", parse_text, "text without NUL characters"),
    )
}
LIST_TYPE = re.compile(r"list\[([a-z]+)\]\Z")


@dataclass(frozen=True)
class ParameterType:
    scalar: ScalarType
    is_list: bool

    @classmethod
    def from_spec(cls, spec: str) -> ParameterType:
        """Parse a declared type such as `date` or `list[int]`."""
        match = LIST_TYPE.match(spec)
        scalar_name = match.group(1) if match else spec
        if scalar_name not in SCALAR_TYPES:
            known = ", ".join(SCALAR_TYPES)
            raise ValueError(f"unknown type {spec!r}: expected one of {known}, or list[TYPE]")
        return cls(SCALAR_TYPES[scalar_name], is_list=match is not None)

    @property
    def name(self) -> str:
        return f"list[{self.scalar.name}]" if self.is_list else self.scalar.name

    @property
    def expected(self) -> str:
        if self.is_list:
            return f"a comma-separated list, each item {self.scalar.expected}"
        return self.scalar.expected


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParameterType
    default: Any = None
    required: bool = True
    description: str = ""

    def parse(self, values: Sequence[str]) -> Any:
        """Convert the raw values given for this parameter in one request."""
        if not self.type.is_list:
            if len(values) > 1:
                raise self.error(f"Parameter {self.name!r} is given {len(values)} times: expected one value.")
            return self.parse_item(values[0])
        return [self.parse_item(item) for item in self.split_list(values)]

    def split_list(self, values: Sequence[str]) -> list[str]:
        """Return a list's items: each value split on commas, except repeated text values.

        A text item may contain commas, so a text list given as repeated keys takes each value
        whole; only a single value is split.
        """
        if self.type.scalar.name == "text" and len(values) > 1:
            items = list(values)
        elif len(values) == 1 and values[0] == "":
            items = []
        else:
            items = [item for value in values for item in value.split(",")]
        if len(items) > MAX_LIST_ITEMS:
            raise self.error(
                f"Parameter {self.name!r} has {len(items)} items: the maximum is {MAX_LIST_ITEMS}."
            )
        if self.required and not items:
            raise self.error(f"Parameter {self.name!r} is empty: expected at least one item.")
        return items

    def parse_item(self, raw: str) -> Any:
        if len(raw) > MAX_VALUE_CHARS:
            raise self.error(
                f"Value for parameter {self.name!r} has {len(raw)} characters: "
                f"the maximum is {MAX_VALUE_CHARS}."
            )
        try:
            return self.type.scalar.parse(raw.strip() if self.type.scalar.name != "text" else raw)
        except ValueError as exc:
            raise self.error(
                f"Invalid value {shorten(raw)} for parameter {self.name!r}{reason(exc, raw)}: "
                f"expected {self.type.scalar.expected}."
            ) from None

    def error(self, message: str) -> ParameterError:
        return ParameterError(message, parameter=self.name, expected=self.type.expected)

    def describe(self) -> dict[str, Any]:
        """Return the JSON description served by GET /reports."""
        return {
            "name": self.name,
            "type": self.type.name,
            "required": self.required,
            "default": json_value(self.default) if not self.required else None,
            "description": self.description,
        }


def json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [json_value(item) for item in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def bind(parameters: Sequence[Parameter], query: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Check a request's query string against the declared parameters and return the bindings."""
    values_by_name: dict[str, list[str]] = {}
    for key, value in query:
        values_by_name.setdefault(key, []).append(value)

    declared = {parameter.name: parameter for parameter in parameters}
    unknown = [key for key in values_by_name if key not in declared]
    if unknown:
        raise unknown_parameter_error(unknown[0], declared)

    bindings: dict[str, Any] = {}
    for parameter in parameters:
        if parameter.name in values_by_name:
            value = parameter.parse(values_by_name[parameter.name])
        elif parameter.required:
            raise parameter.error(
                f"Missing required parameter {parameter.name!r}: expected {parameter.type.expected}."
            )
        else:
            value = parameter.default
        bindings[parameter.name] = value
        if parameter.type.is_list:
            bindings[parameter.name + COUNT_SUFFIX] = len(value)
    return bindings


def unknown_parameter_error(key: str, declared: dict[str, Parameter]) -> ParameterError:
    accepted = ", ".join(declared) if declared else "no parameters"
    return ParameterError(f"Unknown parameter {shorten(key)}: this report takes {accepted}.", parameter=key)
