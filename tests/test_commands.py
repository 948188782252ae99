"""The `streamer export`, `streamer reports` and `streamer check` commands, run as subprocesses."""

from __future__ import annotations

import csv
import io
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from tqdm import tqdm

from tests.conftest import SHIPPED_QUERIES, write_report

SALES_ARGS = ["-p", "from_date=2024-01-01", "-p", "to_date=2024-02-01"]


def streamer(
    *args: str, env: dict[str, str], cwd: Path, stderr: int | None = subprocess.PIPE
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "streamer.cli", *args],
        env={**os.environ, "DATABASE_URL": "", "STREAMER_LOG_LEVEL": "info", **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=stderr,
        timeout=120,
        check=False,
    )


@pytest.fixture
def postgres_env(postgres_demo: str) -> dict[str, str]:
    return {"STREAMER_DATABASE_URL": postgres_demo, "STREAMER_QUERIES_DIR": str(SHIPPED_QUERIES)}


def read_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def expected_sale_ids(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        ids = connection.execute(
            text(
                "SELECT id FROM sales WHERE sold_at >= '2024-01-01' AND sold_at < '2024-02-01' "
                "AND product_id IN (3, 5) ORDER BY sold_at, id"
            )
        ).scalars()
        return [str(sale_id) for sale_id in ids]


def test_export_writes_file(postgres_env: dict[str, str], postgres_engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "sales.csv"

    result = streamer(
        "export", "sales", *SALES_ARGS, "-p", "product_ids=3", "-p", "product_ids=5", "-o", str(target),
        env={**postgres_env, "STREAMER_CHUNK_ROWS": "50"}, cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert result.stderr == b""  # no progress display when stderr is not a terminal
    rows = read_rows(target.read_bytes())
    assert [row["sale_id"] for row in rows] == expected_sale_ids(postgres_engine)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sales.csv"]  # no temporary file left


def test_export_writes_stdout(postgres_env: dict[str, str], postgres_engine: Engine, tmp_path: Path) -> None:
    result = streamer("export", "sales", *SALES_ARGS, "-p", "product_ids=3,5", env=postgres_env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    rows = read_rows(result.stdout)
    assert [row["sale_id"] for row in rows] == expected_sale_ids(postgres_engine)
    assert result.stderr == b""


def test_export_progress_on_terminal(postgres_env: dict[str, str], tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        result = streamer(
            "export", "sales", *SALES_ARGS, "-o", str(tmp_path / "out.csv"),
            env=postgres_env, cwd=tmp_path, stderr=terminal,
        )  # fmt: skip
        os.close(terminal)
        progress_text = read_all(controller).decode()
    finally:
        os.close(controller)

    rows = len(read_rows((tmp_path / "out.csv").read_bytes()))
    assert result.returncode == 0
    assert "sales:" in progress_text
    assert f"{tqdm.format_sizeof(rows)} rows" in progress_text
    assert "rows/s" in progress_text
    assert "kB" in progress_text or "MB" in progress_text  # bytes written
    assert "00:0" in progress_text  # elapsed time


def read_all(descriptor: int) -> bytes:
    output = bytearray()
    while True:
        try:
            piece = os.read(descriptor, 65536)
        except OSError:  # EIO once the terminal side is closed and drained
            break
        if not piece:
            break
        output.extend(piece)
    return bytes(output)


def test_export_failure_removes_partial_file(postgres_url: str, queries_dir: Path, tmp_path: Path) -> None:
    write_report(queries_dir, "divide", "SELECT n, 1 / (n - 600) AS x FROM generate_series(1, 1000) n")
    env = {
        "STREAMER_DATABASE_URL": postgres_url,
        "STREAMER_QUERIES_DIR": str(queries_dir),
        "STREAMER_CHUNK_ROWS": "100",
    }
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    existing = output_dir / "divide.csv"
    existing.write_text("an earlier export\n")

    result = streamer("export", "divide", "-o", str(existing), env=env, cwd=tmp_path)

    assert result.returncode == 1
    message = result.stderr.decode()
    assert message.count("\n") == 1
    assert message.startswith("streamer: The report failed: division by zero")
    assert existing.read_text() == "an earlier export\n"  # never replaced by a partial file
    assert sorted(p.name for p in output_dir.iterdir()) == ["divide.csv"]


def export_statements(engine: Engine) -> int:
    """Return how many statements of exports run in the test database.

    A child names its connection `streamer DOWNLOAD_ID`, and an export's download id starts
    with `export-`.
    """
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'active' AND application_name LIKE 'streamer export-%'"
                )
            ).scalar_one()
        )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_export_interrupt_stops_query(
    signum: signal.Signals, postgres_url: str, postgres_engine: Engine, queries_dir: Path, tmp_path: Path
) -> None:
    write_report(queries_dir, "sleepy", "SELECT 1 AS x FROM pg_sleep(30)")
    env = {"STREAMER_DATABASE_URL": postgres_url, "STREAMER_QUERIES_DIR": str(queries_dir)}
    target = tmp_path / "sleepy.csv"
    export = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "export", "sleepy", "-o", str(target)],
        env={**os.environ, "DATABASE_URL": "", **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A shell that runs this test in the background passes SIGINT on as ignored. A user's
        # export in a terminal gets the default disposition, which turns Ctrl-C into KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 20
    while export_statements(postgres_engine) == 0:
        assert time.monotonic() < deadline, "the export's query never started"
        time.sleep(0.1)

    export.send_signal(signum)
    _, stderr = export.communicate(timeout=15)
    time.sleep(0.5)  # the backend leaves pg_stat_activity shortly after the cancel

    assert export.returncode == 1
    assert stderr.decode() == f"streamer: The export was interrupted; {target} was not written.\n"
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["queries"]
    assert export_statements(postgres_engine) == 0


def test_export_rejects_bad_parameter(sqlite_demo: Path, tmp_path: Path) -> None:
    env = {"STREAMER_DEMO_DATABASE": str(sqlite_demo), "STREAMER_QUERIES_DIR": str(SHIPPED_QUERIES)}
    target = tmp_path / "sales.csv"

    bad_date = streamer(
        "export",
        "sales",
        "-p",
        "from_date=2024-13-01",
        "-p",
        "to_date=2024-02-01",
        "-o",
        str(target),
        env=env,
        cwd=tmp_path,
    )
    unknown = streamer("export", "nope", env=env, cwd=tmp_path)
    no_equals = streamer("export", "sales", "-p", "from_date", env=env, cwd=tmp_path)
    unknown_suffix = streamer(
        "export", "sales", *SALES_ARGS, "-o", str(tmp_path / "sales.xlsx"), env=env, cwd=tmp_path
    )

    assert bad_date.returncode == 1
    assert bad_date.stderr.decode() == (
        "streamer: Invalid value '2024-13-01' for parameter 'from_date' (month must be in 1..12): "
        "expected a date as YYYY-MM-DD.\n"
    )
    assert not target.exists()
    assert unknown.returncode == 1
    assert "Report 'nope' not found: the reports are daily_sales, sales." in unknown.stderr.decode()
    assert no_equals.returncode == 2
    assert "is not NAME=VALUE" in no_equals.stderr.decode()
    assert unknown_suffix.returncode == 1
    assert "Cannot tell the format from the file name" in unknown_suffix.stderr.decode()
    assert not (tmp_path / "sales.xlsx").exists()


def test_export_on_embedded_sqlite(sqlite_demo: Path, tmp_path: Path) -> None:
    env = {"STREAMER_DEMO_DATABASE": str(sqlite_demo), "STREAMER_QUERIES_DIR": str(SHIPPED_QUERIES)}

    result = streamer("export", "daily_sales", *SALES_ARGS, "--format", "csv", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    rows = read_rows(result.stdout)
    assert list(rows[0]) == ["day", "product_id", "product", "units", "revenue"]
    assert len({row["day"] for row in rows}) == 31


def test_reports_lists_parameters(sqlite_demo: Path, tmp_path: Path) -> None:
    env = {"STREAMER_DEMO_DATABASE": str(sqlite_demo), "STREAMER_QUERIES_DIR": str(SHIPPED_QUERIES)}

    result = streamer("reports", env=env, cwd=tmp_path)

    assert result.returncode == 0
    listing = result.stdout.decode()
    assert "sales: Sales lines between two dates" in listing
    assert "  from_date    date, required. First day included (YYYY-MM-DD)." in listing
    assert "  product_ids  list[int], default []. Only these product ids" in listing
    assert "daily_sales: Revenue and units per day" in listing


def test_check_passes_shipped_reports(postgres_env: dict[str, str], tmp_path: Path) -> None:
    result = streamer("check", env=postgres_env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "ok: daily_sales\nok: sales\n"


def test_check_reports_each_problem(postgres_url: str, queries_dir: Path, tmp_path: Path) -> None:
    write_report(queries_dir, "missing_table", "SELECT * FROM no_such_table")
    write_report(queries_dir, "unused", "-- @param n int\nSELECT 1 AS x")
    write_report(queries_dir, "undeclared", "SELECT :n AS x")
    write_report(queries_dir, "bad_type", "-- @param n number\nSELECT :n AS x")
    write_report(queries_dir, "writes", "DELETE FROM sales")
    write_report(
        queries_dir,
        "required_date",
        "-- @param d date\nSELECT date(:d) AS day, CAST(:d AS date) + 1 AS next_day",
    )
    env = {"STREAMER_DATABASE_URL": postgres_url, "STREAMER_QUERIES_DIR": str(queries_dir)}

    result = streamer("check", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert result.stdout.decode().splitlines() == ["ok: daily_sales", "ok: required_date", "ok: sales"]
    problems = result.stderr.decode().splitlines()
    assert len(problems) == 6
    assert (
        problems[0]
        == f"error: {queries_dir / 'bad_type.sql'}:1: parameter 'n' has an unknown type 'number': expected one of int, float, date, datetime, bool, text, or list[TYPE]"
    )
    assert "undeclared.sql:1: the query uses :n, which is not declared" in problems[1]
    assert "unused.sql: parameter 'n' is declared but the query never uses it" in problems[2]
    assert "writes.sql: The report starts with 'DELETE'" in problems[3]
    assert problems[4] == (
        f"error: {queries_dir / 'missing_table.sql'}: the query does not prepare: "
        'relation "no_such_table" does not exist (SQLSTATE 42P01)'
    )
    assert problems[5] == f"5 problem(s) found in {queries_dir}"


def test_check_database_unreachable(queries_dir: Path, tmp_path: Path) -> None:
    env = {
        "STREAMER_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
        "STREAMER_QUERIES_DIR": str(queries_dir),
    }

    result = streamer("check", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert "error: cannot connect to the database:" in result.stderr.decode()
    assert "Connection refused" in result.stderr.decode()
