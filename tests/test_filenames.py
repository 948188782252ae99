"""Content-Disposition file names: a safe ASCII `filename`, the UTF-8 `filename*`, an intact header."""

from __future__ import annotations

import random
import re
import unicodedata
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from streamer.filenames import MAX_NAME_BYTES, attachment
from streamer.params import Parameter, ParameterType
from tests.conftest import write_report

TEXT = Parameter("label", ParameterType.from_spec("text"))
HEADER = re.compile(
    r"""attachment; filename="([A-Za-z0-9._-]+)"(?:; filename\*=UTF-8''([A-Za-z0-9._~%-]+))?\Z"""
)


def names(value: object, parameter: Parameter = TEXT, report: str = "sales") -> tuple[str, str]:
    """Return the ASCII name and the UTF-8 name a header offers, checking the header's syntax."""
    header = attachment(report, (parameter,), {parameter.name: value}, "csv")
    match = HEADER.match(header)
    assert match, header
    ascii_name, encoded = match.groups()
    return ascii_name, unquote(encoded, errors="strict") if encoded else ascii_name


@pytest.mark.parametrize(
    ("value", "ascii_name", "unicode_name"),
    [
        ("north", "sales_north.csv", "sales_north.csv"),
        ('say "hi"', "sales_say__hi.csv", "sales_say _hi.csv"),
        ("a\r\nSet-Cookie: x=1", "sales_a_Set-Cookie__x_1.csv", "sales_a_Set-Cookie_ x=1.csv"),
        ("日本語", "sales.csv", "sales_日本語.csv"),
        ("Grüße", "sales_Grue.csv", "sales_Grüße.csv"),
        ("e\u0301", "sales_e.csv", "sales_é.csv"),  # NFC: one code point, as typed on most systems
        ("\u202egpj.exe", "sales__gpj.exe.csv", "sales__gpj.exe.csv"),
        ("zero\u200bwidth\ufeff", "sales_zero_width.csv", "sales_zero_width.csv"),
        ("line\u2028sep", "sales_line_sep.csv", "sales_line_sep.csv"),
        ("../../etc/passwd", "sales_.._.._etc_passwd.csv", "sales_.._.._etc_passwd.csv"),
        ("C:\\Windows\\x", "sales_C_Windows_x.csv", "sales_C_Windows_x.csv"),
        ("%22%0d%0a", "sales__22_0d_0a.csv", "sales_%22%0d%0a.csv"),
        ("\uff21\uff0f\uff22", "sales_A_B.csv", "sales_\uff21\uff0f\uff22.csv"),
        (" .trailing. ", "sales__.trailing.csv", "sales_ .trailing.csv"),
        ("", "sales.csv", "sales.csv"),
        (None, "sales.csv", "sales.csv"),
    ],
)
def test_filename_values(value: object, ascii_name: str, unicode_name: str) -> None:
    assert names(value) == (ascii_name, unicode_name)


def test_filename_only_unsafe_value() -> None:
    assert names('"\r\n', report="_") == ("report.csv", "report.csv")


def test_filename_windows_device_names() -> None:
    assert names(None, report="con") == ("con_.csv", "con_.csv")
    assert names(None, report="LPT1") == ("LPT1_.csv", "LPT1_.csv")
    assert names("x", report="aux") == ("aux_x.csv", "aux_x.csv")


def test_filename_typed_values() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))

    assert names(moment, Parameter("at", ParameterType.from_spec("datetime"))) == (
        "sales_2024-01-02T03_04_05_05_30.csv",
        "sales_2024-01-02T03_04_05+05_30.csv",
    )
    assert names(
        [date(2024, 1, 1), date(2024, 2, 1)], Parameter("days", ParameterType.from_spec("list[date]"))
    )[0] == ("sales_2024-01-01-2024-02-01.csv")
    assert names(True, Parameter("flag", ParameterType.from_spec("bool")))[0] == "sales_true.csv"
    assert names([], Parameter("ids", ParameterType.from_spec("list[int]")))[0] == "sales.csv"


def test_filename_long_values_fit_file_systems() -> None:
    ascii_name, unicode_name = names("🙂" * 300)

    assert len(unicode_name.encode()) <= MAX_NAME_BYTES
    assert unicode_name.endswith("🙂.csv")
    assert ascii_name == "sales.csv"
    assert len(names("x" * 1000)[0]) == MAX_NAME_BYTES


def test_filename_random_text_stays_safe() -> None:
    generator = random.Random(20241204)
    alphabet = [
        chr(code) for code in (*range(0, 0x250), *range(0x2000, 0x2070), 0xFEFF, 0x1F642, 0xE000, 0xFFFF)
    ]

    for _ in range(2000):
        value = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 40)))
        header = attachment("sales", (TEXT,), {"label": value}, "csv")
        _, unicode_name = names(value)

        assert header.isascii()
        assert header.count('"') == 2
        assert not set(unicode_name) & set('/\\:*?"<>|;\r\n\t\x00')
        assert all(
            unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs") for c in unicode_name
        )
        assert unicode_name == unicodedata.normalize("NFC", unicode_name)
        assert not unicode_name.startswith((".", " "))


def test_download_offers_both_names(start_server, postgres_url: str, queries_dir: Path) -> None:
    write_report(queries_dir, "by_label", "-- @param label text\nSELECT CAST(:label AS text) AS label")
    server = start_server(STREAMER_DATABASE_URL=postgres_url, STREAMER_QUERIES_DIR=str(queries_dir))

    response = httpx.get(f"{server.url}/reports/by_label.jsonl", params={"label": 'Grüße "x"\r\n'})

    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"by_label_Grue__x.jsonl\"; filename*=UTF-8''by_label_Gr%C3%BC%C3%9Fe%20_x.jsonl"
    )
    assert response.json() == {"label": 'Grüße "x"\r\n'}
