"""The `streamer export`, `streamer reports` and `streamer check` commands, for use without a server."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from streamer import demo
from streamer.catalog import Report, load_catalog
from streamer.check import check_reports
from streamer.config import Settings
from streamer.errors import StreamerError
from streamer.export import export
from streamer.formats import FORMATS
from streamer.options import DownloadOptions
from streamer.params import bind

logger = logging.getLogger(__name__)


class ExportInterrupted(StreamerError):
    """The export stopped early: the user pressed Ctrl-C, or the output was closed."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export_parser = commands.add_parser(
        "export", help="run a report without a server and write it to a file or stdout"
    )
    export_parser.add_argument("report", help="report name, as listed by `streamer reports`")
    export_parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=parameter_item,
        help="a report parameter; repeat for more parameters and for list items",
    )
    export_parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="file to write (default: stdout); written only if the report completes",
    )
    export_parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        help="output format (default: from the output file's extension, else csv)",
    )
    export_parser.set_defaults(handler=run_export)

    reports_parser = commands.add_parser("reports", help="list the reports and their parameters")
    reports_parser.set_defaults(handler=list_reports)

    check_parser = commands.add_parser(
        "check", help="check every report file and prepare each query against the database"
    )
    check_parser.set_defaults(handler=run_check)


def parameter_item(raw: str) -> tuple[str, str]:
    name, separator, value = raw.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"{raw!r} is not NAME=VALUE")
    return name, value


def output_format(args: argparse.Namespace) -> str:
    """Return --format, else the output file's suffix, else csv; reject a suffix of no format."""
    if args.format:
        return str(args.format)
    suffix = args.output.suffix.lstrip(".").lower() if args.output else ""
    if not suffix:
        return "csv"
    if suffix not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise StreamerError(
            f"Cannot tell the format from the file name {str(args.output)!r}: "
            f"name it .{' or .'.join(sorted(FORMATS))}, or give --format ({known})."
        )
    return suffix


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    log_to_stderr()  # stdout may carry the report itself
    signal.signal(signal.SIGTERM, interrupt)
    if settings.uses_demo_database:
        demo.ensure_demo_database(settings.demo_database)
    report = load_catalog(settings.queries_dir).get(args.report)
    bindings = bind(report.parameters, args.param)

    try:
        rows = export(
            report,
            bindings,
            settings,
            FORMATS[output_format(args)].writer(DownloadOptions()),
            args.output,
            sys.stderr.isatty(),
        )
    except KeyboardInterrupt:
        written = f"; {args.output} was not written" if args.output else ""
        raise ExportInterrupted(f"The export was interrupted{written}.") from None
    except BrokenPipeError:
        raise ExportInterrupted("The output was closed before the export finished.") from None
    logger.debug("exported %d rows of %s to %s", rows, report.name, args.output or "stdout")
    return 0


def interrupt(signum: int, frame: object) -> None:
    """Treat SIGTERM like Ctrl-C, so the export still stops its child and removes its file.

    Without it, SIGTERM ends this process at once and the child runs its query to the end.
    """
    raise KeyboardInterrupt


def log_to_stderr() -> None:
    for handler in logging.getLogger("streamer").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


def list_reports(args: argparse.Namespace, settings: Settings) -> int:
    for number, report in enumerate(load_catalog(settings.queries_dir)):
        if number:
            print()
        print(describe_report(report))
    return 0


def describe_report(report: Report) -> str:
    lines = [f"{report.name}: {report.description}" if report.description else report.name]
    width = max((len(p.name) for p in report.parameters), default=0)
    for parameter in report.parameters:
        status = "required" if parameter.required else f"default {parameter.describe()['default']!r}"
        lines.append(
            f"  {parameter.name:<{width}}  {parameter.type.name}, {status}. {parameter.description}".rstrip()
        )
    if not report.parameters:
        lines.append("  (no parameters)")
    return "\n".join(lines)


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    if settings.uses_demo_database:
        demo.ensure_demo_database(settings.demo_database)
    reports, problems = check_reports(settings.queries_dir, settings.effective_database_url)
    for report in reports:
        print(f"ok: {report.name}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found in {settings.queries_dir}", file=sys.stderr)
        return 1
    return 0
