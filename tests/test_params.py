"""Typed parameters: parsing request values and checking the query string."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from streamer.params import Parameter, ParameterError, ParameterType, bind


def parameter(name: str, spec: str, **options) -> Parameter:
    return Parameter(name, ParameterType.from_spec(spec), **options)


@pytest.mark.parametrize(
    ("spec", "raw", "value"),
    [
        ("int", "42", 42),
        ("int", "-9223372036854775808", -(2**63)),
        ("float", "1e-3", 0.001),
        ("date", "2024-02-29", date(2024, 2, 29)),
        (
            "datetime",
            "2024-01-01T10:00:00+02:00",
            datetime(2024, 1, 1, 10, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("datetime", "2024-01-01 10:00Z", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("bool", "Yes", True),
        ("bool", "0", False),
        ("text", "  spaces kept  ", "  spaces kept  "),
    ],
)
def test_scalar_values_parsed(spec: str, raw: str, value: object) -> None:
    assert parameter("p", spec).parse([raw]) == value


@pytest.mark.parametrize(
    ("spec", "raw"),
    [
        ("int", "1.0"),
        ("int", "9223372036854775808"),
        ("int", "1_000"),
        ("float", "nan"),
        ("float", "inf"),
        ("date", "2024-02-30"),
        ("date", "20240101"),
        ("datetime", "yesterday"),
        ("bool", "maybe"),
        ("text", "a\x00b"),
    ],
)
def test_invalid_values_rejected(spec: str, raw: str) -> None:
    with pytest.raises(ParameterError, match="Invalid value"):
        parameter("p", spec).parse([raw])


def test_lists_split_on_commas_or_repeat() -> None:
    ids = parameter("ids", "list[int]", required=False, default=[])

    assert ids.parse(["1,2"]) == [1, 2]
    assert ids.parse(["1", "2,3"]) == [1, 2, 3]
    assert ids.parse([""]) == []


def test_repeated_text_list_keeps_commas() -> None:
    names = parameter("names", "list[text]")

    assert names.parse(["a,b"]) == ["a", "b"]
    assert names.parse(["a,b", "c"]) == ["a,b", "c"]


def test_required_list_needs_items() -> None:
    with pytest.raises(ParameterError, match="expected at least one item"):
        parameter("ids", "list[int]").parse([""])


def test_bind_fills_defaults_and_counts() -> None:
    declared = [parameter("start", "date"), parameter("ids", "list[int]", required=False, default=[])]

    bindings = bind(declared, [("start", "2024-01-01")])

    assert bindings == {"start": date(2024, 1, 1), "ids": [], "ids__count": 0}


def test_bind_names_missing_and_unknown() -> None:
    declared = [parameter("start", "date")]

    with pytest.raises(
        ParameterError, match="Missing required parameter 'start': expected a date"
    ) as missing:
        bind(declared, [])
    with pytest.raises(ParameterError, match="Unknown parameter 'stat': this report takes start") as unknown:
        bind(declared, [("start", "2024-01-01"), ("stat", "x")])

    assert missing.value.detail == {"parameter": "start", "expected": "a date as YYYY-MM-DD"}
    assert unknown.value.detail == {"parameter": "stat"}


def test_unknown_type_rejected() -> None:
    with pytest.raises(ValueError, match="unknown type 'decimal'"):
        ParameterType.from_spec("decimal")


def test_impossible_date_explained() -> None:
    with pytest.raises(ParameterError) as error:
        parameter("day", "date").parse(["2024-02-30"])

    assert error.value.message == (
        "Invalid value '2024-02-30' for parameter 'day' (day is out of range for month): "
        "expected a date as YYYY-MM-DD."
    )
