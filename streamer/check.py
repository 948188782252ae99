"""`streamer check`: load every report file and prepare each query against the database.

Unlike the server, which stops at the first broken file, the check collects one problem per
file, so a single run lists everything to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from streamer.catalog import Report, ReportFileError, load_report
from streamer.database import create_report_engine
from streamer.params import COUNT_SUFFIX
from streamer.values import bindable, prepare_session
from streamer.worker import ChildState, Failed, Job, begin_read_only, describe

# A query whose plan takes longer than this is reported as a problem rather than waited for.
PREPARE_TIMEOUT_MS = 30_000


def check_reports(folder: Path, database_url: str) -> tuple[list[Report], list[str]]:
    """Return the reports that load and prepare, and one message for each problem found."""
    if not folder.is_dir():
        return [], [f"{folder}: reports folder not found: set STREAMER_QUERIES_DIR to a folder of .sql files"]
    reports, problems = load_each(folder)
    if not reports:
        return reports, problems or [f"{folder}: no .sql report files found"]

    engine = create_report_engine(database_url)
    try:
        with engine.connect() as connection:
            prepare_session(connection)
            results = [(report, prepare(connection, report)) for report in reports]
    except Exception as exc:  # the database itself is unreachable: one problem, not one per report
        return [], [*problems, f"cannot connect to the database: {first_line(str(exc))}"]
    finally:
        engine.dispose()

    problems += [problem for _, problem in results if problem]
    return [report for report, problem in results if not problem], problems


def load_each(folder: Path) -> tuple[list[Report], list[str]]:
    reports: list[Report] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.sql")):
        try:
            reports.append(load_report(path))
        except ReportFileError as exc:
            problems.append(exc.message)
    return reports, problems


def prepare(connection: Connection, report: Report) -> str | None:
    """Plan the report's query as a download would, without computing a row; return the problem."""
    job = Job(
        download_id="check",
        database_url="",
        sql=report.sql.text,
        list_parameters=report.list_parameters,
        bindings={},
        chunk_rows=1,
    )
    try:
        begin_read_only(connection, PREPARE_TIMEOUT_MS, ChildState())
        describe(connection, job, bindable(connection, sample_bindings(report)))
    except Exception as exc:  # any failure of the database or the driver is the report's problem
        failure = Failed.from_exception(exc)
        code = f" (SQLSTATE {failure.sqlstate})" if failure.sqlstate else ""
        return f"{report.path}: the query does not prepare: {first_line(failure.message)}{code}"
    finally:
        connection.rollback()
    return None


def sample_bindings(report: Report) -> dict[str, Any]:
    """Bind each parameter's default, or NULL where it has none, and empty lists.

    NULL passes every cast and comparison, where a made-up value such as '' could fail a cast
    that PostgreSQL folds while planning.
    """
    bindings: dict[str, Any] = {}
    for parameter in report.parameters:
        value = parameter.default if not parameter.required else None
        if parameter.type.is_list:
            value = value or []
            bindings[parameter.name + COUNT_SUFFIX] = len(value)
        bindings[parameter.name] = value
    return bindings


def first_line(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0] if lines else message
