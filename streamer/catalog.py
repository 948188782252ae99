"""The report catalog: SQL files in the queries folder with their declared parameters.

A report file starts with a block of `--` comment lines. Its first plain line is the report's
one-line description; lines starting with `@param` declare parameters:

    -- Sales lines between two dates.
    -- @param start_date date help="First day, included."
    -- @param product_ids list[int] default="" help="Only these products; all when empty."
    SELECT ...

A parameter without `default=` is required. `-- @timeout SECONDS` overrides the server's query
timeout for this report. The rest of the file is one SELECT that names each parameter as `:name`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.errors import StreamerError
from streamer.params import COUNT_SUFFIX, NAME, Parameter, ParameterError, ParameterType
from streamer.sqltext import ScannedSQL, SQLTextError, scan

REPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


class ReportFileError(StreamerError):
    """A report file cannot be loaded; raised at startup, so the message names file and line."""

    def __init__(self, path: Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


class ReportNotFound(StreamerError):
    status_code = 404


@dataclass(frozen=True)
class Report:
    name: str
    path: Path
    description: str
    parameters: tuple[Parameter, ...]
    sql: ScannedSQL
    timeout_seconds: float | None = None
    """This report's own query timeout; None means the server's STREAMER_QUERY_TIMEOUT_SECONDS."""

    @property
    def list_parameters(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters if p.type.is_list)

    def describe(self) -> dict[str, Any]:
        """Return the JSON description served by GET /reports."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": [parameter.describe() for parameter in self.parameters],
        }


class Catalog:
    """The reports found in one folder, loaded once at startup."""

    def __init__(self, reports: list[Report]) -> None:
        self.reports = {report.name: report for report in sorted(reports, key=lambda r: r.name)}

    def __iter__(self) -> Iterator[Report]:
        return iter(self.reports.values())

    def __len__(self) -> int:
        return len(self.reports)

    def get(self, name: str) -> Report:
        try:
            return self.reports[name]
        except KeyError:
            raise ReportNotFound(
                f"Report {name[:100]!r} not found: the reports are {self.names_text()}.",
                report=name[:100],
            ) from None

    def names_text(self, limit: int = 20) -> str:
        """Return the report names for a message, the first limit of them and a count of the rest."""
        names = list(self.reports)
        if not names:
            return "none (the reports folder has no .sql files)"
        text = ", ".join(names[:limit])
        return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_catalog(folder: Path) -> Catalog:
    """Load every `*.sql` file in folder, raising ReportFileError on the first broken one."""
    if not folder.is_dir():
        raise ReportFileError(
            folder, "reports folder not found: set STREAMER_QUERIES_DIR to a folder of .sql files"
        )
    return Catalog([load_report(path) for path in sorted(folder.glob("*.sql"))])


def load_report(path: Path) -> Report:
    name = path.stem
    if not REPORT_NAME.match(name):
        raise ReportFileError(
            path, "invalid report name: use letters, digits, '_' and '-', starting with a letter or digit"
        )
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ReportFileError(path, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None

    header = parse_header(path, source)
    try:
        sql = scan(source)
    except SQLTextError as exc:
        raise ReportFileError(path, exc.message) from None
    check_parameters_used(path, list(header.parameters), sql)
    return Report(name, path, header.description, header.parameters, sql, header.timeout_seconds)


@dataclass(frozen=True)
class Header:
    description: str
    parameters: tuple[Parameter, ...]
    timeout_seconds: float | None


def parse_header(path: Path, source: str) -> Header:
    """Read the description and the `@param` and `@timeout` directives from the leading comments."""
    description = ""
    parameters: list[Parameter] = []
    timeout_seconds: float | None = None
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        comment = stripped[2:].strip()
        if comment.startswith("@param"):
            parameters.append(parse_declaration(path, number, comment[len("@param") :]))
        elif comment.startswith("@timeout"):
            timeout_seconds = parse_timeout(path, number, comment[len("@timeout") :])
        elif comment.startswith("@"):
            raise ReportFileError(path, f"unknown directive {comment.split()[0]!r}", number)
        elif comment and not description:
            description = comment

    names = [parameter.name for parameter in parameters]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ReportFileError(path, f"parameter {duplicates[0]!r} is declared twice")
    return Header(description, tuple(parameters), timeout_seconds)


def parse_timeout(path: Path, line: int, text: str) -> float:
    try:
        seconds = float(text.strip())
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 10**7:
        raise ReportFileError(
            path, f"invalid @timeout {text.strip()!r}: expected a positive number of seconds", line
        )
    return seconds


def parse_declaration(path: Path, line: int, text: str) -> Parameter:
    """Parse `NAME TYPE [default=VALUE] [help=TEXT]`."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ReportFileError(path, f"invalid @param line: {exc}", line) from None
    if len(words) < 2:
        raise ReportFileError(path, "invalid @param line: expected '@param NAME TYPE'", line)

    name, spec, *options = words
    if not NAME.match(name) or name.endswith(COUNT_SUFFIX):
        raise ReportFileError(
            path,
            f"invalid parameter name {name!r}: use letters, digits and '_', starting with a letter",
            line,
        )
    try:
        parameter_type = ParameterType.from_spec(spec)
    except ValueError as exc:
        raise ReportFileError(path, f"parameter {name!r} has an {exc}", line) from None

    settings = parse_options(path, line, options)
    parameter = Parameter(name, parameter_type, description=settings.get("help", ""))
    if "default" not in settings:
        return parameter
    return Parameter(
        name,
        parameter_type,
        default=parse_default(path, line, parameter, settings["default"]),
        required=False,
        description=parameter.description,
    )


def parse_options(path: Path, line: int, options: list[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for option in options:
        key, separator, value = option.partition("=")
        if not separator or key not in ("default", "help"):
            raise ReportFileError(
                path, f"invalid @param option {option!r}: expected default=VALUE or help=TEXT", line
            )
        settings[key] = value
    return settings


def parse_default(path: Path, line: int, parameter: Parameter, raw: str) -> Any:
    optional = Parameter(parameter.name, parameter.type, required=False)
    try:
        return optional.parse([raw])
    except ParameterError as exc:
        raise ReportFileError(path, f"invalid default: {exc.message}", line) from None


def check_parameters_used(path: Path, parameters: list[Parameter], sql: ScannedSQL) -> None:
    """Check that the SQL binds exactly the declared parameters (and list item counts)."""
    declared = {parameter.name for parameter in parameters}
    counts = {p.name + COUNT_SUFFIX for p in parameters if p.type.is_list}
    used = set(sql.parameters)
    for name in sql.parameters:
        if name not in declared and name not in counts:
            raise ReportFileError(
                path,
                f"the query uses :{name}, which is not declared: add '-- @param {name} TYPE'",
                sql.parameter_lines.get(name),
            )
    for parameter in parameters:
        if parameter.name not in used:
            raise ReportFileError(
                path, f"parameter {parameter.name!r} is declared but the query never uses it"
            )
