"""Parsing PostgreSQL's text output of arrays, checked against what PostgreSQL prints."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from streamer.pgarrays import ArraySyntaxError, parse_array
from streamer.values import POSTGRES_SESSION


@pytest.mark.parametrize(
    ("literal", "elements"),
    [
        ("'{}'::int[]", []),
        ("ARRAY[1, NULL, -3]", ["1", None, "-3"]),
        ("ARRAY[ARRAY[1, 2], ARRAY[3, NULL]]", [["1", "2"], ["3", None]]),
        ("ARRAY['', 'NULL', NULL, ' x ', 'a,b', '{}', 'say \"hi\"', 'back\\slash']",
         ["", "NULL", None, " x ", "a,b", "{}", 'say "hi"', "back\\slash"]),
        ("ARRAY[E'line\\nbreak', 'Grüße 🙂']", ["line\nbreak", "Grüße 🙂"]),
        ("ARRAY['{\"a\": [1, 2]}'::json]", ['{"a": [1, 2]}']),
        ("ARRAY['2024-01-31 13:45:00+02'::timestamptz]", ["2024-01-31 11:45:00+00"]),
        ("ARRAY['NaN', 'Infinity']::float8[]", ["NaN", "Infinity"]),
    ],
)  # fmt: skip
def test_parse_array_postgres_output(postgres_engine: Engine, literal: str, elements: list) -> None:
    with postgres_engine.connect() as connection:
        for statement in POSTGRES_SESSION:
            connection.exec_driver_sql(statement)
        text = connection.exec_driver_sql(f"SELECT ({literal})::text").scalar_one()

    assert parse_array(text) == elements


@pytest.mark.parametrize("text", ["[0:1]={1,2}", "1,2", "{1,2", "{1,2}x", '{"open}', ""])
def test_parse_array_rejects_other_text(text: str) -> None:
    with pytest.raises(ArraySyntaxError):
        parse_array(text)
