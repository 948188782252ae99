"""The report page at GET / and its parameter check, over HTTP and in a real headless Chromium."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.browser import Browser, browser  # noqa: F401 (browser is a fixture)
from tests.conftest import write_report

TOKEN = "page-test-token-0123456789"


def read_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def test_page_lists_reports_with_forms(start_server) -> None:
    server = start_server()

    response = httpx.get(server.url + "/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert '<meta name="viewport"' in page
    assert "Sales lines between two dates" in page
    assert 'id="sales-from_date" name="from_date" type="date" value=""' in page
    assert '<textarea id="sales-product_ids" name="product_ids"' in page
    assert 'data-report="daily_sales"' in page
    assert '<option value="csv">csv</option>' in page
    assert 'id="access-token"' not in page
    assert '<label for="sales-from_date">from_date\n' in page
    required_mark = '<span class="visually-hidden">(required)</span>'
    assert page.count(required_mark) == 4  # from_date and to_date of both reports
    policy = response.headers["content-security-policy"]
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}">' in page
    assert "frame-ancestors 'none'" in policy


def test_page_inputs_follow_parameter_types(start_server, queries_dir: Path) -> None:
    write_report(
        queries_dir,
        "typed",
        "-- Every parameter type.\n"
        "-- @param n int default=7\n"
        "-- @param ratio float\n"
        "-- @param flag bool default=yes\n"
        "-- @param at datetime default=2024-05-01T08:30:00\n"
        '-- @param label text default="a <b> & c"\n'
        "-- @param days list[date] default=2024-01-01,2024-01-02\n"
        "SELECT :n AS n, :ratio AS ratio, :flag AS flag, :at AS at, :label AS label\n"
        "WHERE :days__count = 0 OR DATE '2024-01-01' IN :days",
    )
    server = start_server(STREAMER_QUERIES_DIR=str(queries_dir))

    page = httpx.get(server.url + "/").text

    assert 'id="typed-n" name="n" type="number" value="7"' in page
    assert 'step="1"' in page
    assert 'id="typed-ratio" name="ratio" type="number" value=""' in page
    assert 'step="any"' in page
    assert 'id="typed-flag" name="flag" type="checkbox" value="true"\n             checked' in page
    assert 'id="typed-at" name="at" type="datetime-local" value="2024-05-01T08:30:00"' in page
    assert 'value="a &lt;b&gt; &amp; c"' in page  # HTML-escaped
    assert ">2024-01-01\n2024-01-02</textarea>" in page


def test_page_is_public_when_tokens_are_set(start_server) -> None:
    server = start_server(STREAMER_API_TOKENS=TOKEN)

    page = httpx.get(server.url + "/")
    reports = httpx.get(server.url + "/reports")
    validate = httpx.get(server.url + "/reports/sales/validate")

    assert page.status_code == 200
    assert 'data-tokens-required="true"' in page.text
    assert 'id="access-token"' in page.text
    assert reports.status_code == 401
    assert validate.status_code == 401


def test_validate_matches_download_errors(start_server) -> None:
    server = start_server()
    queries = [
        "from_date=2024-13-01&to_date=2024-02-01",
        "to_date=2024-02-01",
        "from_date=2024-01-01&to_date=2024-02-01&colour=red",
        "from_date=2024-01-01&to_date=2024-02-01&product_ids=1,x",
        "from_date=%FF&to_date=2024-02-01",
    ]

    for query in queries:
        checked = httpx.get(f"{server.url}/reports/sales/validate?{query}")
        downloaded = httpx.get(f"{server.url}/reports/sales.csv?{query}")
        assert checked.status_code == 400, query
        assert checked.json() == downloaded.json(), query


def test_validate_accepts_good_parameters(start_server) -> None:
    server = start_server()

    checked = httpx.get(server.url + "/reports/sales/validate?from_date=2024-01-01&to_date=2024-02-01")
    missing = httpx.get(server.url + "/reports/nope/validate")

    assert checked.status_code == 200
    assert checked.json() == {"valid": True}
    assert missing.status_code == 404
    assert "download" not in server.log()  # checking never starts a child


def fill_sales_form(session: Browser, server_url: str) -> None:
    session.driver.get(server_url + "/")
    session.type_into("sales-from_date", "01/10/2024")  # Chromium's en-US date input: MM/DD/YYYY
    session.type_into("sales-to_date", "01/20/2024")
    session.type_into("sales-product_ids", "3\n5")


def test_browser_downloads_report(
    browser: Browser,  # noqa: F811
    start_server,
    postgres_demo: str,
    postgres_engine: Engine,
) -> None:
    server = start_server(STREAMER_DATABASE_URL=postgres_demo, STREAMER_CHUNK_ROWS="50")
    fill_sales_form(browser, server.url)

    browser.driver.find_element("css selector", "#report-sales button[type=submit]").click()
    saved = browser.wait_for_download()

    assert saved.name == "sales_2024-01-10_2024-01-20_3-5.csv"
    rows = read_rows(saved.read_bytes())
    with postgres_engine.connect() as connection:
        expected = connection.execute(
            text(
                "SELECT id FROM sales WHERE sold_at >= '2024-01-10' AND sold_at < '2024-01-20' "
                "AND product_id IN (3, 5) ORDER BY sold_at, id"
            )
        ).scalars()
        expected_ids = [str(sale_id) for sale_id in expected]
    assert len(expected_ids) > 0
    assert [row["sale_id"] for row in rows] == expected_ids
    assert server.wait_for_log("outcome=complete")


def test_browser_explains_bad_dates(browser: Browser, start_server) -> None:  # noqa: F811
    server = start_server()
    browser.driver.get(server.url + "/")
    submit = "#report-daily_sales button[type=submit]"

    # February 30 is rejected by the date input itself, so the page explains it without a request.
    browser.type_into("daily_sales-from_date", "02/30/2024")
    browser.type_into("daily_sales-to_date", "03/01/2024")
    browser.driver.find_element("css selector", submit).click()
    impossible = browser.wait_for_text("#report-daily_sales .field .error", "from_date")

    # A six-digit year passes the date input but not the API, whose message the page shows.
    browser.type_into("daily_sales-from_date", "01/01/202455")
    browser.driver.find_element("css selector", submit).click()
    from_api = browser.wait_for_text("#report-daily_sales .field .error", "202455")

    assert impossible == "Invalid value for parameter 'from_date': expected a date as YYYY-MM-DD."
    assert from_api == (
        "Invalid value '202455-01-01' for parameter 'from_date': expected a date as YYYY-MM-DD."
    )
    error = browser.driver.find_element("id", "daily_sales-from_date-error")
    assert error.is_displayed()
    assert list(browser.downloads.iterdir()) == []
    assert "download" not in server.log()  # no download was started


def test_browser_sends_token_in_header(
    browser: Browser,  # noqa: F811
    start_server,
    postgres_demo: str,
) -> None:
    server = start_server(STREAMER_DATABASE_URL=postgres_demo, STREAMER_API_TOKENS=TOKEN)
    fill_sales_form(browser, server.url)
    submit = "#report-sales button[type=submit]"

    browser.driver.find_element("css selector", submit).click()
    missing = browser.wait_for_text("#access-token-error", "access token")
    browser.type_into("access-token", "not-the-right-token-0123456789")
    browser.driver.find_element("css selector", submit).click()
    invalid = browser.wait_for_text("#access-token-error", "Invalid access token")
    browser.type_into("access-token", TOKEN)
    browser.driver.find_element("css selector", submit).click()
    saved = browser.wait_for_download()

    assert missing == "Enter your access token before downloading."
    assert invalid == "Invalid access token: check the token you were given."
    expected = httpx.get(
        server.url + "/reports/sales.csv",
        params=[
            ("from_date", "2024-01-10"),
            ("to_date", "2024-01-20"),
            ("product_ids", "3"),
            ("product_ids", "5"),
        ],
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert saved.name == "sales_2024-01-10_2024-01-20_3-5.csv"
    assert read_rows(saved.read_bytes()) == read_rows(expected.content)
    assert TOKEN not in server.log()
    assert TOKEN not in browser.driver.current_url
    assert browser.wait_for_text("#report-sales .status", "Saved sales_2024-01-10_2024-01-20_3-5.csv")


def test_browser_phone_width_and_keyboard(browser: Browser, start_server) -> None:  # noqa: F811
    from selenium.webdriver.common.keys import Keys

    server = start_server()
    browser.driver.set_window_size(390, 844)
    browser.driver.get(server.url + "/")

    overflow = browser.driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    browser.type_into("daily_sales-from_date", "01/01/2024")
    browser.type_into("daily_sales-to_date", "01/04/2024")
    browser.driver.find_element("id", "daily_sales-to_date").send_keys(Keys.ENTER)
    saved = browser.wait_for_download()

    assert overflow == 0  # no sideways scrolling on a phone-sized screen
    assert saved.name == "daily_sales_2024-01-01_2024-01-04.csv"
    days = {row["day"] for row in read_rows(saved.read_bytes())}
    assert days == {"2024-01-01", "2024-01-02", "2024-01-03"}


def test_browser_downloads_excel_csv(browser: Browser, start_server) -> None:  # noqa: F811
    server = start_server()
    fill_sales_form(browser, server.url)

    browser.driver.find_element("css selector", "#report-sales input.excel").click()
    browser.driver.find_element("css selector", "#report-sales button[type=submit]").click()
    saved = browser.wait_for_download()

    body = saved.read_bytes()
    assert body.startswith("\ufeffsale_id,".encode())
    assert b"\r\n" in body
    assert server.wait_for_log("outcome=complete")


def test_browser_never_saves_failed_download(
    browser: Browser,  # noqa: F811
    start_server,
    postgres_url: str,
    queries_dir: Path,
) -> None:
    write_report(queries_dir, "divide", "SELECT n, 1 / (n - 600) AS x FROM generate_series(1, 1000) n")
    server = start_server(
        STREAMER_DATABASE_URL=postgres_url,
        STREAMER_QUERIES_DIR=str(queries_dir),
        STREAMER_API_TOKENS=TOKEN,
        STREAMER_CHUNK_ROWS="100",
    )
    browser.driver.get(server.url + "/")
    browser.type_into("access-token", TOKEN)

    browser.driver.find_element("css selector", "#report-divide button[type=submit]").click()
    error = browser.wait_for_text("#report-divide .form-error", "The download failed")

    assert error.endswith("Nothing was saved.")
    assert server.wait_for_log("outcome=failed")
    assert list(browser.downloads.iterdir()) == []
