"""A table with one column per PostgreSQL type and rows of hard values, and PostgreSQL's own CSV of it.

Rows put NULLs, specials and text that needs quoting in different rows, so that chunk sizes 1, 2
and 7 give chunks with and without NULLs in each column.
"""

from __future__ import annotations

import csv
import io

from sqlalchemy.engine import Engine

from streamer.values import POSTGRES_SESSION

CREATE = r"""
DROP TABLE IF EXISTS type_matrix;
DROP TYPE IF EXISTS mood;
CREATE TYPE mood AS ENUM ('happy', 'sad, "very"', 'ünïcödé');
CREATE TABLE type_matrix (
    id integer PRIMARY KEY,
    small smallint, whole integer, big bigint,
    exact numeric, scaled numeric(20, 10),
    single real, double double precision,
    flag boolean,
    body text, short varchar(20), fixed char(5),
    day date, clock time, clock_tz timetz, stamp timestamp, stamp_tz timestamptz, span interval,
    id_uuid uuid, doc json, docb jsonb,
    ints integer[], texts text[],
    raw bytea, feeling mood, price money, address inet
);
INSERT INTO type_matrix VALUES
(1, 1, 1, 1, 305184080441754059, 0.1, 0.1, 0.1, true,
 'plain', 'short', 'ab',
 '2024-01-31', '13:45:00', '13:45:00+02', '2024-01-31 13:45:00', '2024-01-31 13:45:00+02', '1 day 02:03:04',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50, null], "b": "x"}', '{"b": "x", "a": [1, 2.50, null]}',
 '{1,2,3}', '{plain,"with space","with,comma","with\"quote",NULL}',
 '\x00ff10', 'happy', 12.30, '192.168.0.1/24'),
(2, -32768, -2147483648, -9223372036854775808, 12345678901234567890.12, -0.0000000001, 3.4028235e38, 1.7976931348623157e308, false,
 'a,b', 'x"y', 'a,b',
 '4713-01-01 BC', '00:00:00', '00:00:00-14', '4713-01-01 00:00:00 BC', '1970-01-01 00:00:00+14', '-1 days -00:00:01',
 '00000000-0000-0000-0000-000000000000', '[]', '[]',
 '{}', '{}',
 '\x', 'sad, "very"', -1234567.89, '::1'),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL,
 NULL, NULL,
 NULL, NULL, NULL, NULL),
(4, 32767, 2147483647, 9223372036854775807, 'NaN', 0, 'NaN', 'NaN', true,
 '', '', '',
 'infinity', '24:00:00', '23:59:59.999999+00', 'infinity', 'infinity', '0',
 'ffffffff-ffff-ffff-ffff-ffffffffffff', '"only a string"', 'null',
 '{NULL}', '{""}',
 '\x0a0d2c22', 'ünïcödé', 0, '2001:db8::ff00:42:8329'),
(5, 0, 0, 9007199254740993, 0.00000000000000000001, 1234567890.0123456789, 'Infinity', 'Infinity', false,
 E'line one\nline two', E'cr\rhere', E'tab\t',
 '-infinity', '23:59:59.999999', '12:00:00+05:30', '2000-02-29 23:59:59.999999', '2000-02-29 23:59:59.999999-03:30', '1 year 2 mons 3 days 04:05:06.789',
 NULL, E'{\n  "multi": "line",\n  "quote": "say \\"hi\\""\n}', '{"nested": {"deep": [true, false]}}',
 '{-1,0,NULL,2147483647}', '{"a\\\\b","line\nbreak"}',
 NULL, NULL, NULL, NULL),
(6, -1, -1, -9007199254740993, -0.5, -0.5, '-Infinity', '-Infinity', NULL,
 E'\\.', '\.x', ' sp ',
 '0001-01-01', '00:00:00.000001', '00:00:00.000001+00', '0001-01-01 00:00:00', '0001-01-01 00:00:00+00', '-178000000 years',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'null', '{"a": "\u00e9\ud83d\ude00"}',
 NULL, '{NULL,"NULL"}',
 '\x5c2e', 'happy', -0.01, NULL),
(7, 2, 2, 2, 1e-30, 99999999.9999999999, 1.17549435e-38, 4.9e-324, true,
 '  leading and trailing  ', 'NULL', 'NaN',
 '2024-02-29', '12:34:56.5', '12:34:56.5-07', '2024-02-29 12:34:56.5', '2024-02-29 12:34:56.5-07', '00:00:00.000001',
 NULL, '{"emoji": "🙂", "rtl": "שלום"}', '{"num": 1e2}',
 '{{1,2},{3,4}}', '{"Grüße","日本語"}',
 '\xdeadbeef', 'sad, "very"', 92233720368547758.07, '10.0.0.0/8'),
(8, 3, 3, 3, -305184080441754059.000, 3.0000000000, 1.5, -0.0, false,
 'Grüße, 日本語, 🙂, ‮rtl, ﻿bom, line sep  end', '=1+1', '-5',
 '1999-12-31', '23:59:59', '23:59:59+14', '1999-12-31 23:59:59', '1999-12-31 23:59:59-12', '-00:00:00.000001',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1234567890123456789012', '12345678901234567890.123',
 '{7}', '{=cmd}',
 '\x', 'happy', NULL, '0.0.0.0'),
(9, 4, 4, 4, 1.5, 1.5, 0.30000001, 0.30000000000000004, true,
 E'"quoted", \r\n and CRLF', '@SUM(A1)', '+1',
 '2024-12-31', '00:00:01', '00:00:01+01', '2024-12-31 00:00:01', '2024-12-31 00:00:01+01', '1 mon',
 NULL, '{}', '{}',
 NULL, NULL,
 NULL, NULL, 1, NULL),
(10, 5, 5, 5, 10, 10, 100, 1e100, false,
 'NaN', E'\tstarts with tab', E'\rcr',
 '2025-06-15', '06:15:00', '06:15:00-00', '2025-06-15 06:15:00', '2025-06-15 06:15:00+00', '2 days',
 NULL, '123', '-1.5e-7',
 '{5}', '{"-x"}',
 '\x00', 'ünïcödé', -5, '127.0.0.1');
"""

SELECT = "SELECT * FROM type_matrix ORDER BY id"


def create(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(CREATE.replace("%", "%%"))


def copy_csv(engine: Engine, query: str, options: str = "FORMAT csv, HEADER", session: bool = True) -> bytes:
    """Return what PostgreSQL's COPY prints for query, in a session set up like the service's child."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if session:
            for statement in POSTGRES_SESSION:
                cursor.execute(statement)
        output = io.BytesIO()
        cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH ({options})", output)
        return output.getvalue()
    finally:
        raw.close()


def copy_cells(engine: Engine, query: str) -> list[list[str | None]]:
    """Return PostgreSQL's text of every cell, with None for NULL, header row first."""
    body = copy_csv(engine, query, r"FORMAT csv, HEADER, NULL '\N'")
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    return [rows[0], *[[None if cell == "\\N" else cell for cell in row] for row in rows[1:]]]
