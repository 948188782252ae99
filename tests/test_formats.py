"""TSV, JSON Lines and the Excel-ready CSV: what their standard readers get back, heartbeats included."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from streamer.kinds import POSTGRES_KINDS, Kind
from tests import typematrix
from tests.conftest import write_report

PLAIN = {"Accept-Encoding": "identity"}
MAX_SAFE_INTEGER = 2**53 - 1
BOM = "\ufeff".encode()


@pytest.fixture(scope="module")
def matrix_engine(postgres_engine: Engine) -> Engine:
    typematrix.create(postgres_engine)
    return postgres_engine


def serve(start_server, url: str, queries_dir: Path, **env_and_reports: str):
    env = {key: value for key, value in env_and_reports.items() if key.isupper()}
    for name, sql in env_and_reports.items():
        if not name.isupper():
            write_report(queries_dir, name, sql)
    return start_server(STREAMER_DATABASE_URL=url, STREAMER_QUERIES_DIR=str(queries_dir), **env)


def download(server, path: str, params: dict[str, str] | None = None) -> httpx.Response:
    response = httpx.get(f"{server.url}/reports/{path}", params=params, headers=PLAIN, timeout=30)
    assert response.status_code == 200, response.text
    return response


def expected_json(text: str | None, kind: Kind, postgres_json: Any) -> Any:
    """Return the JSON value the documented rules give for PostgreSQL's text of a value.

    Arrays are expected as PostgreSQL's own `to_json` renders them, given as postgres_json.
    """
    if text is None:
        return None
    if kind.element is not None:
        return postgres_json
    if kind is Kind.INTEGER:
        return int(text) if abs(int(text)) <= MAX_SAFE_INTEGER else text
    if kind is Kind.FLOAT:
        return text if text in ("NaN", "Infinity", "-Infinity") else float(text)
    if kind is Kind.BOOLEAN:
        return text == "t"
    if kind is Kind.JSON:
        return json.loads(text)
    return text


def postgres_json(engine: Engine) -> list[list[Any]]:
    """Return PostgreSQL's `to_json` of every cell of the type matrix, row by row."""
    with engine.connect() as connection:
        names = connection.exec_driver_sql(typematrix.SELECT + " LIMIT 0").keys()
        columns = ", ".join(f"to_json({name})::text" for name in names)
        rows = connection.exec_driver_sql(f"SELECT {columns} FROM type_matrix ORDER BY id").all()
    return [[json.loads(cell) if cell is not None else None for cell in row] for row in rows]


def matrix_kinds(engine: Engine) -> list[Kind]:
    with engine.connect() as connection:
        result = connection.exec_driver_sql(typematrix.SELECT + " LIMIT 0")
        return [POSTGRES_KINDS.get(column[1], Kind.TEXT) for column in result.cursor.description]


@pytest.mark.parametrize("chunk_rows", ["1", "7", "20000"])
def test_tsv_matches_copy_with_tab_delimiter(
    start_server, postgres_url: str, matrix_engine: Engine, queries_dir: Path, chunk_rows: str
) -> None:
    server = serve(
        start_server, postgres_url, queries_dir, STREAMER_CHUNK_ROWS=chunk_rows, matrix=typematrix.SELECT
    )

    response = download(server, "matrix.tsv")

    assert response.headers["content-type"] == "text/tab-separated-values; charset=utf-8"
    expected = typematrix.copy_csv(matrix_engine, typematrix.SELECT, "FORMAT csv, HEADER, DELIMITER E'\\t'")
    assert response.content == expected
    cells = typematrix.copy_cells(matrix_engine, typematrix.SELECT)
    rows = list(csv.reader(io.StringIO(response.text, newline=""), dialect="excel-tab"))
    assert rows == [cells[0], *[[cell or "" for cell in row] for row in cells[1:]]]
    frame = pd.read_csv(io.BytesIO(response.content), sep="\t", dtype=str, keep_default_na=False)
    assert frame.values.tolist() == [[cell or "" for cell in row] for row in cells[1:]]


@pytest.mark.parametrize("chunk_rows", ["1", "2", "7", "20000"])
def test_jsonl_typed_values(
    start_server, postgres_url: str, matrix_engine: Engine, queries_dir: Path, chunk_rows: str
) -> None:
    server = serve(
        start_server, postgres_url, queries_dir, STREAMER_CHUNK_ROWS=chunk_rows, matrix=typematrix.SELECT
    )

    response = download(server, "matrix.jsonl")

    assert response.headers["content-type"] == "application/jsonl; charset=utf-8"
    cells = typematrix.copy_cells(matrix_engine, typematrix.SELECT)
    kinds = matrix_kinds(matrix_engine)
    expected = [
        {
            name: expected_json(text, kind, as_json)
            for name, text, kind, as_json in zip(cells[0], row, kinds, json_row, strict=True)
        }
        for row, json_row in zip(cells[1:], postgres_json(matrix_engine), strict=True)
    ]
    lines = response.content.split(b"\n")
    assert lines[-1] == b""  # the body ends with a line feed
    assert [json.loads(line) for line in lines[:-1]] == expected
    assert [list(json.loads(line)) for line in lines[:-1]] == [cells[0]] * len(expected)
    frame = pd.read_json(io.BytesIO(response.content), lines=True, dtype=False)
    assert frame["id"].tolist() == list(range(1, 11))


def test_jsonl_numbers_exact_where_safe(start_server, postgres_url: str, queries_dir: Path) -> None:
    sql = (
        "SELECT * FROM (VALUES (1::bigint, 0.1::numeric(20,10), 0.1::float8, true, '{\"a\": 1}'::jsonb),"
        " (9007199254740991, 12345678901234567890.12, 'NaN', false, NULL),"
        " (9007199254740992, NULL, '-Infinity', NULL, 'null'), (-9223372036854775808, 'NaN', 1e-7, NULL, '[]'))"
        " AS t(id, amount, ratio, flag, doc)"
    )
    server = serve(start_server, postgres_url, queries_dir, STREAMER_CHUNK_ROWS="2", numbers=sql)

    body = download(server, "numbers.jsonl").content

    assert body == (
        b'{"id":1,"amount":"0.1000000000","ratio":0.1,"flag":true,"doc":{"a": 1}}\n'
        b'{"id":9007199254740991,"amount":"12345678901234567890.12","ratio":"NaN","flag":false,"doc":null}\n'
        b'{"id":"9007199254740992","amount":null,"ratio":"-Infinity","flag":null,"doc":null}\n'
        b'{"id":"-9223372036854775808","amount":"NaN","ratio":1e-07,"flag":null,"doc":[]}\n'
    )


def test_jsonl_arrays_typed_like_columns(start_server, postgres_url: str, queries_dir: Path) -> None:
    sql = (
        "SELECT ARRAY[1, NULL, 9007199254740993]::bigint[] AS ids, ARRAY['NaN', 1.5, '-Infinity']::float8[] AS ratios,"
        " ARRAY[0.10, NULL]::numeric[] AS amounts, '{{t,f},{f,NULL}}'::bool[] AS flags,"
        " ARRAY['{\"a\": [1, 2]}'::jsonb, NULL] AS docs, '[0:1]={1,2}'::int[] AS shifted,"
        " ARRAY['a,b', 'NULL', NULL, 'say \"hi\"']::text[] AS words, '{}'::int[] AS empty"
    )
    server = serve(start_server, postgres_url, queries_dir, arrays=sql)

    body = download(server, "arrays.jsonl").content

    assert body == (
        b'{"ids":[1,null,"9007199254740993"],"ratios":["NaN",1.5,"-Infinity"],"amounts":["0.10",null],'
        b'"flags":[[true,false],[false,null]],"docs":[{"a": [1, 2]},null],"shifted":"[0:1]={1,2}",'
        b'"words":["a,b","NULL",null,"say \\"hi\\""],"empty":[]}\n'
    )


def test_jsonl_duplicate_names_get_suffixes(start_server, postgres_url: str, queries_dir: Path) -> None:
    sql = 'SELECT 1 AS id, 2 AS id, 3 AS "id.1", 4 AS "名前", \'line\nbreak\' AS "say ""hi"""'
    server = serve(start_server, postgres_url, queries_dir, names=sql)

    body = download(server, "names.jsonl").content

    row = json.loads(body)
    assert list(row.items()) == [
        ("id", 1),
        ("id.2", 2),
        ("id.1", 3),
        ("名前", 4),
        ('say "hi"', "line\nbreak"),
    ]
    assert body.count(b"\n") == 1


def test_jsonl_text_escapes(start_server, tmp_path: Path, queries_dir: Path) -> None:
    texts = [
        'say "hi"',
        "back\\slash",
        "line\nbreak\r\n",
        "tab\t",
        "\x00nul\x01\x1f",
        "Grüße 🙂",
        "\u2028",
        "",
    ]
    path = tmp_path / "texts.sqlite3"
    import sqlite3

    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (i INTEGER, s TEXT)")
        connection.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
    server = serve(start_server, f"sqlite:///{path}", queries_dir, texts="SELECT s FROM t ORDER BY i")

    body = download(server, "texts.jsonl").content

    assert [json.loads(line)["s"] for line in body.splitlines()] == texts


def test_sqlite_jsonl_types_each_chunk(start_server, tmp_path: Path, queries_dir: Path) -> None:
    import sqlite3

    path = tmp_path / "typed.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (i INTEGER, n, f REAL, s TEXT)")
        connection.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [(1, 10, 0.5, "a"), (2, None, None, None), (3, 2**60, float("inf"), "-1"), (4, "x", 1.0, "")],
        )
    server = serve(
        start_server,
        f"sqlite:///{path}",
        queries_dir,
        STREAMER_CHUNK_ROWS="1",
        typed="SELECT * FROM t ORDER BY i",
    )

    body = download(server, "typed.jsonl").content

    assert [json.loads(line) for line in body.splitlines()] == [
        {"i": 1, "n": 10, "f": 0.5, "s": "a"},
        {"i": 2, "n": None, "f": None, "s": None},
        {"i": 3, "n": str(2**60), "f": "Infinity", "s": "-1"},
        {"i": 4, "n": "x", "f": 1.0, "s": ""},
    ]


# The first row takes longer than the 3 s a response waits for rows before it starts, so
# heartbeats go out before the first rows as well as between them.
SLOW_SQL = (
    "SELECT g AS n, 'x' || g AS label FROM generate_series(1, 4) g,"
    " LATERAL (SELECT pg_sleep(CASE WHEN g = 1 THEN 3.5 WHEN g = 3 THEN 1.2 ELSE 0 END)) s"
)


def test_heartbeats_invisible_to_readers(start_server, postgres_url: str, queries_dir: Path) -> None:
    server = serve(
        start_server,
        postgres_url,
        queries_dir,
        STREAMER_HEARTBEAT_SECONDS="0.3",
        STREAMER_CHUNK_ROWS="2",
        # A cursor hands over each chunk as soon as it is fetched, so heartbeats also fall between
        # rows; COPY would hold these tiny rows in PostgreSQL's 8 KB send buffer until the end.
        STREAMER_POSTGRES_COPY="0",
        slow=SLOW_SQL,
        slow_empty="SELECT 1 AS n FROM pg_sleep(4) WHERE false",
    )
    rows = [
        {"n": "1", "label": "x1"},
        {"n": "2", "label": "x2"},
        {"n": "3", "label": "x3"},
        {"n": "4", "label": "x4"},
    ]

    csv_body = download(server, "slow.csv").content
    excel_body = download(server, "slow.csv", {"_excel": "1"}).content
    tsv_body = download(server, "slow.tsv").content
    jsonl_body = download(server, "slow.jsonl").content
    empty_jsonl = download(server, "slow_empty.jsonl").content

    assert b"\n\n" in csv_body
    assert list(csv.DictReader(io.StringIO(csv_body.decode(), newline=""))) == rows
    assert pd.read_csv(io.BytesIO(csv_body), dtype=str).to_dict("records") == rows
    assert b"\r\n\r\n" in excel_body
    assert list(csv.DictReader(io.StringIO(excel_body.decode("utf-8-sig"), newline=""))) == rows
    assert pd.read_csv(io.BytesIO(excel_body), dtype=str, encoding="utf-8-sig").to_dict("records") == rows
    assert b"\n\n" in tsv_body
    assert list(csv.DictReader(io.StringIO(tsv_body.decode(), newline=""), dialect="excel-tab")) == rows
    assert pd.read_csv(io.BytesIO(tsv_body), sep="\t", dtype=str).to_dict("records") == rows
    assert jsonl_body.startswith(b" ")  # heartbeats came before the first row
    assert b"}  " in jsonl_body  # and after a row, before the line feed
    assert [json.loads(line) for line in jsonl_body.decode().splitlines()] == [
        {"n": int(row["n"]), "label": row["label"]} for row in rows
    ]
    assert pd.read_json(io.BytesIO(jsonl_body), lines=True)["n"].tolist() == [1, 2, 3, 4]
    # NOTE: an empty result that waited past a heartbeat is one line of spaces, no row to read.
    assert empty_jsonl.strip(b" ") == b""
    assert [json.loads(line) for line in empty_jsonl.decode().splitlines() if line.strip()] == []


def test_excel_csv_bom_crlf_and_formulas(start_server, postgres_url: str, queries_dir: Path) -> None:
    sql = (
        "SELECT * FROM (VALUES (1, -5::int, -1.5::numeric, '=1+1', 'Grüße 日本語', NULL::text, '-$1.00'::money),"
        " (2, 3, 2.0, '+SUM(A1)', '@here', '', 0::money), (3, -1, 0, '-2+3', E'\\tTAB', 'plain', '-0.50'::money),"
        " (4, 0, -0.1, E'\\rCR', 'a \"quoted\", text', E'line\\nbreak', NULL))"
        ' AS t(id, "=neg", amount, formula, unicode, maybe, price)'
    )
    server = serve(start_server, postgres_url, queries_dir, STREAMER_CHUNK_ROWS="2", cells=sql)

    body = download(server, "cells.csv", {"_excel": "true"}).content

    assert body.startswith(BOM)
    assert body.count(BOM) == 1
    text = body[len(BOM) :].decode()
    assert text.replace("\r\n", "").count("\n") == 1  # only the quoted LF inside a value
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["id", "'=neg", "amount", "formula", "unicode", "maybe", "price"],
        ["1", "-5", "-1.5", "'=1+1", "Grüße 日本語", "", "-$1.00"],
        ["2", "3", "2.0", "'+SUM(A1)", "'@here", "", "$0.00"],
        ["3", "-1", "0", "'-2+3", "'\tTAB", "plain", "-$0.50"],
        ["4", "0", "-0.1", "'\rCR", 'a "quoted", text', "line\nbreak", ""],
    ]
    assert b',"",' in body  # the empty string stays distinct from NULL


@pytest.mark.parametrize(
    ("query", "phrase"),
    [
        ("_excel=maybe", "Invalid value 'maybe' for option '_excel'"),
        ("_nope=1", "Unknown option '_nope'"),
        ("_excel=1&_excel=0", "given more than once"),
    ],
)
def test_bad_options_rejected(start_server, query: str, phrase: str) -> None:
    server = start_server()

    response = httpx.get(
        f"{server.url}/reports/daily_sales.csv?from_date=2024-01-01&to_date=2024-01-02&{query}"
    )

    assert response.status_code == 400
    assert phrase in response.json()["error"]
    assert response.json()["parameter"].startswith("_")
    assert "download" not in server.log()


def test_excel_option_only_for_csv(start_server) -> None:
    server = start_server()
    params = {"from_date": "2024-01-01", "to_date": "2024-01-02", "_excel": "1"}

    tsv = httpx.get(f"{server.url}/reports/daily_sales.tsv", params=params)
    jsonl = httpx.get(f"{server.url}/reports/daily_sales.jsonl", params=params)

    assert tsv.status_code == 400
    assert "applies to .csv downloads only" in tsv.json()["error"]
    assert jsonl.status_code == 400


def soffice_path() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.skipif(
    soffice_path() is None, reason="LibreOffice (soffice) is not installed: apt-get install libreoffice-calc"
)
def test_excel_csv_opens_in_libreoffice(
    start_server, postgres_url: str, queries_dir: Path, tmp_path: Path
) -> None:
    sql = (
        "SELECT * FROM (VALUES (1, 'Grüße 日本語 €', '=1+1', -5, '=HYPERLINK(\"http://127.0.0.1/\")'),"
        " (2, 'naïve café', '+2+3', -7, '@SUM(1,2)')) AS t(id, word, formula, negative, link)"
    )
    server = serve(start_server, postgres_url, queries_dir, cells=sql)
    excel = download(server, "cells.csv", {"_excel": "1"}).content
    plain = download(server, "cells.csv").content

    excel_cells = libreoffice_cells(excel, tmp_path / "excel")
    plain_cells = libreoffice_cells(plain, tmp_path / "plain")

    assert plain_cells[1][2] == "2"  # without the option, LibreOffice runs the formula
    assert excel_cells[0] == ["id", "word", "formula", "negative", "link"]
    assert [row[1] for row in excel_cells[1:]] == ["Grüße 日本語 €", "naïve café"]
    assert [row[2] for row in excel_cells[1:]] == ["'=1+1", "'+2+3"]
    assert [row[3] for row in excel_cells[1:]] == ["-5", "-7"]
    assert [row[4] for row in excel_cells[1:]] == ['\'=HYPERLINK("http://127.0.0.1/")', "'@SUM(1,2)"]


def libreoffice_cells(body: bytes, folder: Path) -> list[list[str]]:
    """Open body as a CSV file in LibreOffice Calc with formulas evaluated, and return the cells it shows."""
    folder.mkdir()
    source = folder / "report.csv"
    source.write_bytes(body)
    # Import: comma separator, quote ", UTF-8 (76), from line 1, and token 13 "evaluate formulas"
    # on, the worst case. LibreOffice 7.4 ignores the BOM when the import names a character set, so this test
    # shows that the BOM never turns into a visible character, not that it selects UTF-8.
    import_options = "44,34,76,1,,0,false,true,false,false,false,false,true"
    command = [
        soffice_path(),
        f"-env:UserInstallation=file://{folder / 'profile'}",
        "--headless",
        f"--infilter=CSV:{import_options}",
        "--convert-to",
        "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false",
        "--outdir",
        str(folder / "out"),
        str(source),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    text = (folder / "out" / "report.csv").read_text(encoding="utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def test_sqlite_excel_leaves_numbers_alone(start_server, tmp_path: Path, queries_dir: Path) -> None:
    import sqlite3

    path = tmp_path / "excel.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (i INTEGER, amount, note TEXT)")
        connection.executemany(
            "INSERT INTO t VALUES (?, ?, ?)", [(1, -5, "-5"), (2, -0.5, "=A1"), (3, "-x", "@y")]
        )
    server = serve(
        start_server,
        f"sqlite:///{path}",
        queries_dir,
        STREAMER_CHUNK_ROWS="1",
        cells="SELECT * FROM t ORDER BY i",
    )

    body = download(server, "cells.csv", {"_excel": "1"}).content

    assert body.decode("utf-8-sig") == "i,amount,note\r\n1,-5,'-5\r\n2,-0.5,'=A1\r\n3,'-x,'@y\r\n"


def test_jsonl_failure_marker_on_own_line(start_server, postgres_url: str, queries_dir: Path) -> None:
    sql = "SELECT n, 1 / (n - 5) AS x FROM generate_series(1, 10) n"
    server = serve(start_server, postgres_url, queries_dir, STREAMER_CHUNK_ROWS="2", failing=sql)
    body = bytearray()

    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", f"{server.url}/reports/failing.jsonl", headers=PLAIN) as response,
    ):
        for piece in response.iter_raw():
            body.extend(piece)

    lines = bytes(body).decode().split("\n")
    # PostgreSQL's integer division truncates toward zero.
    expected = [{"n": 1, "x": 0}, {"n": 2, "x": 0}, {"n": 3, "x": 0}, {"n": 4, "x": -1}]
    assert [json.loads(line) for line in lines[:4]] == expected
    assert lines[4].startswith('#"streamer: download failed" download_id=')
    assert lines[5:] == [""]
