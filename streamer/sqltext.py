"""Scanning report SQL: bind parameters, comments, string literals and statement boundaries.

SQLAlchemy's `text()` finds `:name` with a regular expression that does not know about string
literals or comments, so `'12:30'` would become a bind parameter named `30`. This scanner walks
the SQL the way PostgreSQL's lexer does (quoted strings, quoted identifiers, dollar quoting,
nested block comments) and escapes every colon that is not a real parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamer.errors import StreamerError

PARAMETER = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
DOLLAR_QUOTE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
IDENTIFIER_CHAR = re.compile(r"[A-Za-z0-9_$]")
FIRST_WORD = re.compile(r"[(\s]*([A-Za-z]+)")


class SQLTextError(StreamerError):
    """A report's SQL cannot be served as one read-only SELECT."""


@dataclass(frozen=True)
class ScannedSQL:
    text: str
    """The SQL for `sqlalchemy.text()`: comments kept, non-parameter colons escaped, no final `;`."""
    parameters: tuple[str, ...]
    """Names bound with `:name`, in order of first use."""
    parameter_lines: dict[str, int]
    """The line of the file on which each parameter is first used."""


def scan(sql: str) -> ScannedSQL:
    """Scan one SELECT statement and return it ready for `sqlalchemy.text()`."""
    scanner = _Scanner(sql)
    scanner.run()
    body = "".join(scanner.output).rstrip()
    check_single_select(scanner.code_only())
    return ScannedSQL(
        text=body,
        parameters=tuple(dict.fromkeys(scanner.parameters)),
        parameter_lines=scanner.parameter_lines,
    )


def check_single_select(code: str) -> None:
    """Check that code (SQL without comments or literals) is one SELECT or WITH ... SELECT."""
    statements = [part for part in code.split(";") if part.strip()]
    if not statements:
        raise SQLTextError("The report contains no SQL statement: expected one SELECT.")
    if len(statements) > 1:
        raise SQLTextError("The report contains more than one SQL statement: expected exactly one SELECT.")
    match = FIRST_WORD.match(statements[0])
    keyword = match.group(1).upper() if match else ""
    if keyword not in ("SELECT", "WITH", "VALUES", "TABLE"):
        raise SQLTextError(
            f"The report starts with {keyword or 'no keyword'!r}: expected SELECT or WITH ... SELECT."
        )


class _Scanner:
    """A single pass over the SQL that copies it to `output` and collects parameter names."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.position = 0
        self.output: list[str] = []
        self.code: list[str] = []
        self.parameters: list[str] = []
        self.parameter_lines: dict[str, int] = {}
        self.ended = False

    def code_only(self) -> str:
        return "".join(self.code)

    def run(self) -> None:
        while self.position < len(self.sql):
            self.step()

    def step(self) -> None:
        sql, at = self.sql, self.position
        char = sql[at]
        if sql.startswith("--", at):
            self.copy_until_line_end()
        elif sql.startswith("/*", at):
            self.copy_block_comment()
        elif char == "'":
            escapes = at > 0 and sql[at - 1] in "eE" and not self.is_identifier_char(at - 2)
            self.copy_quoted("'", backslash_escapes=escapes)
        elif char == '"':
            self.copy_quoted('"', backslash_escapes=False)
        elif char == "$" and self.copy_dollar_quoted():
            pass
        elif char == ":":
            self.copy_colon()
        elif char == ";":
            self.position += 1
            self.code.append(";")
            self.ended = True
        else:
            self.position += 1
            self.code.append(char)
            self.emit(char)

    def emit(self, text: str) -> None:
        # Text after the final semicolon (comments and blanks) is dropped with it.
        if not self.ended or text.strip():
            self.output.append(text.replace(":", "\\:"))

    def emit_raw(self, text: str) -> None:
        self.output.append(text)

    def is_identifier_char(self, at: int) -> bool:
        return at >= 0 and bool(IDENTIFIER_CHAR.match(self.sql, at))

    def copy_until_line_end(self) -> None:
        end = self.sql.find("\n", self.position)
        end = len(self.sql) if end < 0 else end
        if not self.ended:
            self.emit(self.sql[self.position : end])
        self.position = end

    def copy_block_comment(self) -> None:
        depth, at = 0, self.position
        while at < len(self.sql):
            if self.sql.startswith("/*", at):
                depth, at = depth + 1, at + 2
            elif self.sql.startswith("*/", at):
                depth, at = depth - 1, at + 2
                if depth == 0:
                    break
            else:
                at += 1
        if depth != 0:
            raise SQLTextError("A /* block comment */ in the report is never closed.")
        if not self.ended:
            self.emit(self.sql[self.position : at])
        self.position = at
        self.code.append(" ")

    def copy_quoted(self, quote: str, *, backslash_escapes: bool) -> None:
        at = self.position + 1
        while True:
            if at >= len(self.sql):
                kind = "string literal" if quote == "'" else "quoted identifier"
                raise SQLTextError(f"A {kind} in the report is never closed (missing {quote}).")
            char = self.sql[at]
            if (backslash_escapes and char == "\\") or (char == quote and self.sql.startswith(quote * 2, at)):
                at += 2
            elif char == quote:
                break
            else:
                at += 1
        self.emit_literal(self.sql[self.position : at + 1])
        self.position = at + 1

    def copy_dollar_quoted(self) -> bool:
        if self.is_identifier_char(self.position - 1):
            return False
        match = DOLLAR_QUOTE.match(self.sql, self.position)
        if not match:
            return False
        delimiter = match.group(0)
        end = self.sql.find(delimiter, match.end())
        if end < 0:
            raise SQLTextError(f"A dollar-quoted string opened with {delimiter} is never closed.")
        self.emit_literal(self.sql[self.position : end + len(delimiter)])
        self.position = end + len(delimiter)
        return True

    def emit_literal(self, literal: str) -> None:
        self.code.append(" '' ")
        self.emit(literal)

    def copy_colon(self) -> None:
        match = PARAMETER.match(self.sql, self.position)
        after_colon = self.position > 0 and self.sql[self.position - 1] == ":"
        if match and not after_colon and not self.is_identifier_char(self.position - 1):
            name = match.group(1)
            self.parameters.append(name)
            self.parameter_lines.setdefault(name, self.sql.count("\n", 0, self.position) + 1)
            self.code.append(" ? ")
            self.emit_raw(f":{name}")
            self.position = match.end()
            return
        self.position += 1
        self.code.append(":")
        self.emit(":")
