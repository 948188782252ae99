"""Scanning report SQL for parameters, literals and statement boundaries."""

from __future__ import annotations

import pytest

from streamer.sqltext import SQLTextError, scan


def test_colons_in_literals_and_casts_escaped() -> None:
    scanned = scan(
        "SELECT '12:30'::time AS t, :start::date AS d, $$ :no $$ AS q, \"a:b\" FROM x WHERE y IN :ids"
    )

    assert scanned.parameters == ("start", "ids")
    assert scanned.text == (
        "SELECT '12\\:30'\\:\\:time AS t, :start\\:\\:date AS d, $$ \\:no $$ AS q, \"a\\:b\" FROM x WHERE y IN :ids"
    )


def test_comments_hide_parameters() -> None:
    scanned = scan("-- uses :a\nSELECT /* :b /* nested :c */ */ :d AS d")

    assert scanned.parameters == ("d",)


def test_escape_string_backslash_quote() -> None:
    scanned = scan("SELECT E'it\\'s :not' AS s, :yes AS y")

    assert scanned.parameters == ("yes",)


def test_final_semicolon_and_comment_dropped() -> None:
    scanned = scan("SELECT 1 AS x;  -- done\n")

    assert scanned.text == "SELECT 1 AS x"


def test_parameters_listed_once_in_order() -> None:
    assert scan("SELECT :b, :a, :b").parameters == ("b", "a")


@pytest.mark.parametrize(
    ("sql", "phrase"),
    [
        ("SELECT 1; SELECT 2", "more than one SQL statement"),
        ("DELETE FROM sales", "starts with 'DELETE'"),
        ("", "no SQL statement"),
        ("-- only a comment", "no SQL statement"),
        ("SELECT 'open", "never closed"),
        ("SELECT /* open", "never closed"),
        ("SELECT $tag$ open", "never closed"),
    ],
)
def test_invalid_sql_rejected(sql: str, phrase: str) -> None:
    with pytest.raises(SQLTextError, match=phrase):
        scan(sql)


def test_with_select_accepted() -> None:
    assert scan("WITH q AS (SELECT 1 AS x) SELECT x FROM q").parameters == ()
