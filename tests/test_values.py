"""Every PostgreSQL type against PostgreSQL's own `COPY ... (FORMAT csv, HEADER)`, at several chunk sizes."""

from __future__ import annotations

import csv
import io
import math
import sqlite3
import struct
from pathlib import Path
from urllib.parse import quote

import httpx
import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from tests import typematrix
from tests.conftest import write_report

PLAIN = {"Accept-Encoding": "identity"}
# None runs with the default chunk size.
CHUNK_SIZES = ["1", "2", "7", None]


@pytest.fixture(scope="module")
def matrix_engine(postgres_engine: Engine) -> Engine:
    typematrix.create(postgres_engine)
    return postgres_engine


def serve_reports(start_server, url: str, queries_dir: Path, chunk_rows: str | None = None, **reports: str):
    for name, sql in reports.items():
        write_report(queries_dir, name, sql)
    env = {"STREAMER_DATABASE_URL": url, "STREAMER_QUERIES_DIR": str(queries_dir)}
    if chunk_rows is not None:
        env["STREAMER_CHUNK_ROWS"] = chunk_rows
    return start_server(**env)


def download(server, name: str, params: dict[str, str] | None = None) -> bytes:
    response = httpx.get(f"{server.url}/reports/{name}", params=params, headers=PLAIN, timeout=30)
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("chunk_rows", CHUNK_SIZES)
def test_type_matrix_matches_copy_csv(
    start_server, postgres_url: str, matrix_engine: Engine, queries_dir: Path, chunk_rows: str | None
) -> None:
    server = serve_reports(start_server, postgres_url, queries_dir, chunk_rows, matrix=typematrix.SELECT)

    body = download(server, "matrix.csv")

    expected = typematrix.copy_csv(matrix_engine, typematrix.SELECT)
    assert body.decode().splitlines(keepends=True) == expected.decode().splitlines(keepends=True)
    assert body == expected


@pytest.mark.parametrize("chunk_rows", CHUNK_SIZES)
def test_type_matrix_reads_back_cell_by_cell(
    start_server, postgres_url: str, matrix_engine: Engine, queries_dir: Path, chunk_rows: str | None
) -> None:
    server = serve_reports(start_server, postgres_url, queries_dir, chunk_rows, matrix=typematrix.SELECT)

    body = download(server, "matrix.csv")

    expected = typematrix.copy_cells(matrix_engine, typematrix.SELECT)
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert rows[0] == expected[0]
    assert len(rows) == len(expected)
    for row, expected_row in zip(rows[1:], expected[1:], strict=True):
        for name, cell, text in zip(expected[0], row, expected_row, strict=True):
            assert cell == (text or ""), f"row {row[0]} column {name}"


def test_session_settings_of_server_do_not_leak(
    start_server, postgres_url: str, matrix_engine: Engine, queries_dir: Path
) -> None:
    options = (
        "-c TimeZone=Asia/Kolkata -c DateStyle=SQL,DMY -c IntervalStyle=sql_standard -c extra_float_digits=-3"
    )
    url = f"{postgres_url}?options={quote(options)}"
    server = serve_reports(start_server, url, queries_dir, "3", matrix=typematrix.SELECT)

    body = download(server, "matrix.csv")

    assert body == typematrix.copy_csv(matrix_engine, typematrix.SELECT)
    assert b"2024-01-31 11:45:00+00" in body  # timestamptz in UTC with an explicit offset


def test_floats_read_back_to_same_value(
    start_server, postgres_url: str, matrix_engine: Engine, queries_dir: Path
) -> None:
    sql = "SELECT id, single::float8 AS single, double FROM type_matrix ORDER BY id"
    server = serve_reports(start_server, postgres_url, queries_dir, "2", matrix=typematrix.SELECT)

    rows = list(csv.DictReader(io.StringIO(download(server, "matrix.csv").decode(), newline="")))

    with matrix_engine.connect() as connection:
        exact = {row.id: row for row in connection.exec_driver_sql(sql)}
    for row in rows:
        source = exact[int(row["id"])]
        if source.double is None:
            assert row["double"] == ""
            continue
        single = struct.unpack("f", struct.pack("f", float(row["single"])))[0]
        assert same_float(single, source.single), row["id"]
        assert same_float(float(row["double"]), source.double), row["id"]


def same_float(left: float, right: float) -> bool:
    if math.isnan(right):
        return math.isnan(left)
    return left == right and math.copysign(1, left) == math.copysign(1, right)


@pytest.mark.parametrize("chunk_rows", ["1", "2", None])
def test_null_empty_and_nan_differ(
    start_server, postgres_url: str, queries_dir: Path, chunk_rows: str | None
) -> None:
    sql = (
        "SELECT NULL::text AS a, ''::text AS b, 'x'::text AS c, 'NaN'::float8 AS d, NULL::float8 AS e,"
        " 'Infinity'::float8 AS f, '-Infinity'::float8 AS g FROM generate_series(1, 3)"
    )
    server = serve_reports(start_server, postgres_url, queries_dir, chunk_rows, specials=sql)

    body = download(server, "specials.csv")
    tsv = download(server, "specials.tsv")
    jsonl = download(server, "specials.jsonl")

    assert body == b"a,b,c,d,e,f,g\n" + b',"",x,NaN,,Infinity,-Infinity\n' * 3
    assert tsv == b"a\tb\tc\td\te\tf\tg\n" + b'\t""\tx\tNaN\t\tInfinity\t-Infinity\n' * 3
    row = b'{"a":null,"b":"","c":"x","d":"NaN","e":null,"f":"Infinity","g":"-Infinity"}\n'
    assert jsonl == row * 3


def test_one_column_null_is_quoted_empty(
    start_server, postgres_url: str, matrix_engine: Engine, queries_dir: Path
) -> None:
    sql = "SELECT * FROM (VALUES ('a'), (NULL), (''), ('\\.')) AS t(only_column)"
    server = serve_reports(start_server, postgres_url, queries_dir, "2", single=sql)

    body = download(server, "single.csv")

    # The one documented difference from COPY: COPY writes this NULL as an empty line.
    assert typematrix.copy_csv(matrix_engine, sql) == b'only_column\na\n\n""\n"\\."\n'
    assert body == b'only_column\na\n""\n""\n"\\."\n'
    assert pd.read_csv(io.BytesIO(body), keep_default_na=False)["only_column"].tolist() == [
        "a",
        "",
        "",
        "\\.",
    ]


def test_bigint_stays_integer_in_every_chunk(start_server, postgres_url: str, queries_dir: Path) -> None:
    sql = "SELECT * FROM (VALUES (1::bigint), (2), (NULL), (9007199254740993)) t(id)"
    server = serve_reports(start_server, postgres_url, queries_dir, "2", ids=sql)

    body = download(server, "ids.csv")

    assert body == b'id\n1\n2\n""\n9007199254740993\n'
    assert list(csv.reader(io.StringIO(body.decode()))) == [["id"], ["1"], ["2"], [""], ["9007199254740993"]]


def test_numeric_keeps_its_digits(start_server, postgres_url: str, queries_dir: Path) -> None:
    sql = (
        "SELECT 305184080441754059::numeric AS big_id, 0.1::numeric(20,10) AS amount,"
        " 12345678901234567890.12::numeric AS big"
    )
    server = serve_reports(start_server, postgres_url, queries_dir, "1", amounts=sql)

    body = download(server, "amounts.csv")

    assert body == b"big_id,amount,big\n305184080441754059,0.1000000000,12345678901234567890.12\n"


def test_empty_result_is_header_only(start_server, postgres_url: str, queries_dir: Path) -> None:
    sql = "SELECT 1::int AS id, 'x'::text AS name WHERE false"
    server = serve_reports(start_server, postgres_url, queries_dir, None, empty=sql)

    assert download(server, "empty.csv") == b"id,name\n"
    assert download(server, "empty.tsv") == b"id\tname\n"
    assert download(server, "empty.jsonl") == b""


def test_column_names_kept_in_order(
    start_server, postgres_url: str, matrix_engine: Engine, queries_dir: Path
) -> None:
    sql = (
        'SELECT a.id, b.id, 1 AS "名前", 2 AS "has ""quote"", comma", 3 AS "line\nbreak", 4 AS " padded ", 5 AS "id"'
        " FROM (SELECT 1 AS id) a JOIN (SELECT 1 AS id) b USING (id)"
    )
    server = serve_reports(start_server, postgres_url, queries_dir, None, names=sql)

    body = download(server, "names.csv")

    names = ["id", "id", "名前", 'has "quote", comma', "line\nbreak", " padded ", "id"]
    assert body == typematrix.copy_csv(matrix_engine, sql)
    assert next(csv.reader(io.StringIO(body.decode(), newline=""))) == names
    assert list(pd.read_csv(io.BytesIO(body)).columns) == [
        "id",
        "id.1",
        "名前",
        'has "quote", comma',
        "line\nbreak",
        " padded ",
        "id.2",
    ]


def test_text_round_trips_through_readers(start_server, postgres_url: str, queries_dir: Path) -> None:
    texts = [
        "a,b", 'say "hi"', "line\nbreak", "cr\rhere", "crlf\r\nhere", "tab\there", "  padded  ", "Grüße 日本語 🙂",
        "\u2028sep\u2029", "\u202ertl", "\ufeffbom", "\\.", "NULL", "#comment", "=1+1", "",
    ]  # fmt: skip
    values = ", ".join(f"({i}, {escape_literal(text)})" for i, text in enumerate(texts))
    sql = f"SELECT t AS text_value, i FROM (VALUES {values}) AS v(i, t) ORDER BY i"
    server = serve_reports(start_server, postgres_url, queries_dir, "3", texts=sql)

    body = download(server, "texts.csv")

    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert [row[0] for row in rows[1:]] == texts
    frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    assert frame["text_value"].tolist() == texts


def escape_literal(text: str) -> str:
    """Return text as a PostgreSQL E'' literal, so CR and LF survive reading the report file."""
    for character, escape in (("\\", "\\\\"), ("'", "\\'"), ("\r", "\\r"), ("\n", "\\n"), ("\t", "\\t")):
        text = text.replace(character, escape)
    return f"E'{text}'"


def test_sqlite_values_follow_same_rules(start_server, tmp_path: Path, queries_dir: Path) -> None:
    path = tmp_path / "values.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE v (id INTEGER, n INTEGER, f REAL, t TEXT, b BLOB)")
        connection.executemany(
            "INSERT INTO v VALUES (?, ?, ?, ?, ?)",
            [
                (1, 1, 0.1, "a,b", b"\x00\xff"),
                (2, None, float("inf"), "", None),
                (3, 9007199254740993, float("-inf"), None, b""),
                (4, -(2**63), 1e100, 'say "hi"\n', b"\x10"),
                (5, 2**63 - 1, float("nan"), "Grüße", None),
            ],
        )
    server = serve_reports(
        start_server, f"sqlite:///{path}", queries_dir, "2", values="SELECT * FROM v ORDER BY id"
    )

    body = download(server, "values.csv")

    # SQLite stores NaN as NULL, so the last row's f is empty.
    assert body.decode() == (
        "id,n,f,t,b\n"
        '1,1,0.1,"a,b",\\x00ff\n'
        '2,,Infinity,"",\n'
        "3,9007199254740993,-Infinity,,\\x\n"
        '4,-9223372036854775808,1e+100,"say ""hi""\n",\\x10\n'
        "5,9223372036854775807,,Grüße,\n"
    )
