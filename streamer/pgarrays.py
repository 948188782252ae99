"""PostgreSQL's text output of an array, parsed into nested lists of element text.

The output is `{a,b,NULL}`, nested braces for more dimensions, and `"..."` with backslash escapes
around an element that is empty, is the word NULL, or contains braces, the delimiter, quotes,
backslashes or whitespace. An array whose lower bound is not 1 starts with its bounds, such as
`[0:1]={1,2}`. Those are not parsed, so that no reader mistakes their positions.
"""

from __future__ import annotations

# An element's text, None for NULL, or a list of those for one more dimension.
Element = str | None | list["Element"]


class ArraySyntaxError(ValueError):
    """The text is not an array literal in the form PostgreSQL prints."""


def parse_array(text: str, delimiter: str = ",") -> list[Element]:
    """Return the elements of an array literal. Raises ArraySyntaxError for any other text."""
    if not text.startswith("{"):
        raise ArraySyntaxError(f"not an array literal with lower bound 1: {text[:40]!r}")
    try:
        elements, end = parse_level(text, 0, delimiter)
    except IndexError:
        raise ArraySyntaxError(f"array literal ends early: {text[:40]!r}") from None
    if end != len(text):
        raise ArraySyntaxError(f"text after the array literal: {text[:40]!r}")
    return elements


def parse_level(text: str, start: int, delimiter: str) -> tuple[list[Element], int]:
    """Return the elements of the braces that open at start, and the position after them."""
    elements: list[Element] = []
    position = start + 1
    if text[position] == "}":
        return elements, position + 1
    while True:
        element: Element
        if text[position] == "{":
            element, position = parse_level(text, position, delimiter)
        elif text[position] == '"':
            element, position = parse_quoted(text, position)
        else:
            element, position = parse_unquoted(text, position, delimiter)
        elements.append(element)

        if text[position] == "}":
            return elements, position + 1
        if text[position] != delimiter:
            raise ArraySyntaxError(f"expected {delimiter!r} or '}}' at {position}: {text[:40]!r}")
        position += 1


def parse_quoted(text: str, start: int) -> tuple[str, int]:
    characters: list[str] = []
    position = start + 1
    while text[position] != '"':
        if text[position] == "\\":
            position += 1
        characters.append(text[position])
        position += 1
    return "".join(characters), position + 1


def parse_unquoted(text: str, start: int, delimiter: str) -> tuple[str | None, int]:
    position = start
    while text[position] not in (delimiter, "}"):
        position += 1
    token = text[start:position]
    return (None if token == "NULL" else token), position
