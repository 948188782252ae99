"""Download options: query-string keys that start with `_`, kept apart from report parameters.

A report parameter's name starts with a letter, so an option can never shadow one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streamer.params import ParameterError, parse_bool, shorten

OPTION_PREFIX = "_"
BOOLEAN_EXPECTED = "true or false (also yes/no, on/off, 1/0)"


class OptionError(ParameterError):
    """A download option is unknown, repeated, invalid or not available for the format."""


@dataclass(frozen=True)
class DownloadOptions:
    excel: bool = False
    """Spreadsheet-ready CSV: byte-order mark, CRLF line ends and neutralised formulas."""


OPTION_NAMES = ("_excel",)


def split_options(items: Sequence[tuple[str, str]]) -> tuple[DownloadOptions, list[tuple[str, str]]]:
    """Return the options given in a query string, and the items left for the report parameters."""
    option_values: dict[str, str] = {}
    parameters: list[tuple[str, str]] = []
    for key, value in items:
        if not key.startswith(OPTION_PREFIX):
            parameters.append((key, value))
            continue
        if key not in OPTION_NAMES:
            raise OptionError(
                f"Unknown option {shorten(key)}: the options are {', '.join(OPTION_NAMES)}.", parameter=key
            )
        if key in option_values:
            raise OptionError(f"Option {key!r} is given more than once: expected one value.", parameter=key)
        option_values[key] = value

    return DownloadOptions(excel=option_bool(option_values, "_excel")), parameters


def option_bool(option_values: dict[str, str], key: str) -> bool:
    if key not in option_values:
        return False
    try:
        return parse_bool(option_values[key].strip())
    except ValueError:
        raise OptionError(
            f"Invalid value {shorten(option_values[key])} for option {key!r}: expected {BOOLEAN_EXPECTED}.",
            parameter=key,
            expected=BOOLEAN_EXPECTED,
        ) from None
