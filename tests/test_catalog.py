"""Loading report files: header directives, parameter checks and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.catalog import ReportFileError, ReportNotFound, load_catalog, load_report
from tests.conftest import SHIPPED_QUERIES


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.sql"
    path.write_text(source, encoding="utf-8")
    return path


def test_shipped_reports_load() -> None:
    catalog = load_catalog(SHIPPED_QUERIES)

    assert {report.name for report in catalog} >= {"sales", "daily_sales"}
    sales = catalog.get("sales")
    assert [p.name for p in sales.parameters] == ["from_date", "to_date", "product_ids"]
    assert sales.parameters[2].default == []


def test_header_directives_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "orders",
        '-- Orders by city.\n-- More detail here.\n-- @param city text default="New York" help="City name."\n'
        "-- @timeout 90\nSELECT :city AS city",
    )

    report = load_report(path)

    assert report.description == "Orders by city."
    assert report.parameters[0].default == "New York"
    assert report.parameters[0].description == "City name."
    assert report.timeout_seconds == 90


def test_report_without_header(tmp_path: Path) -> None:
    report = load_report(write(tmp_path, "plain", "SELECT 1 AS one"))

    assert report.parameters == ()
    assert report.description == ""


@pytest.mark.parametrize(
    ("source", "phrase"),
    [
        ("SELECT :x AS x", "uses :x, which is not declared"),
        ("-- @param x int\nSELECT 1 AS one", "'x' is declared but the query never uses it"),
        ("-- @param x int\n-- @param x int\nSELECT :x AS x", "declared twice"),
        ("-- @param x money\nSELECT :x AS x", "unknown type 'money'"),
        ("-- @param x int default=abc\nSELECT :x AS x", "invalid default"),
        ("-- @param x int colour=red\nSELECT :x AS x", "invalid @param option"),
        ("-- @param 1x int\nSELECT 1", "invalid parameter name"),
        ("-- @timeout soon\nSELECT 1", "invalid @timeout"),
        ("-- @owner me\nSELECT 1", "unknown directive '@owner'"),
        ("UPDATE t SET x = 1", "expected SELECT"),
    ],
)
def test_broken_report_named_with_line(tmp_path: Path, source: str, phrase: str) -> None:
    path = write(tmp_path, "broken", source)

    with pytest.raises(ReportFileError, match=phrase) as error:
        load_report(path)

    assert str(path) in error.value.message


def test_invalid_file_name_rejected(tmp_path: Path) -> None:
    with pytest.raises(ReportFileError, match="invalid report name"):
        load_report(write(tmp_path, "my report", "SELECT 1"))


def test_missing_folder_explained(tmp_path: Path) -> None:
    with pytest.raises(ReportFileError, match="set STREAMER_QUERIES_DIR"):
        load_catalog(tmp_path / "nowhere")


def test_unknown_report_404() -> None:
    with pytest.raises(ReportNotFound) as error:
        load_catalog(SHIPPED_QUERIES).get("nope")

    assert error.value.status_code == 404


def test_undeclared_parameter_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "orders", "-- Orders.\nSELECT 1 AS one\nWHERE 1 = :missing")

    with pytest.raises(ReportFileError) as error:
        load_report(path)

    assert error.value.message.startswith(f"{path}:3: the query uses :missing")
