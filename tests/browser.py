"""A headless Chromium driven through chromedriver, for tests of the report page.

Chromium runs without background networking, so the only traffic it makes goes to the test's
server on loopback. Selenium is pointed at Debian's chromedriver so that it never downloads one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--lang=en-US",
)


class Browser:
    """One Chromium session with its own profile and download folder."""

    def __init__(self, profile: Path, downloads: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        options = Options()
        options.binary_location = str(CHROMIUM)
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
        self.downloads = downloads
        self.driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)

    def type_into(self, element_id: str, keys: str) -> None:
        element = self.driver.find_element("id", element_id)
        element.clear()
        element.send_keys(keys)

    def visible_text(self, selector: str) -> list[str]:
        return [e.text for e in self.driver.find_elements("css selector", selector) if e.is_displayed()]

    def wait_for_download(self, timeout: float = 30.0) -> Path:
        """Return the one finished file in the download folder, once Chromium has renamed it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Chromium writes to a hidden temporary file or NAME.crdownload, then renames it.
            files = [
                p
                for p in self.downloads.iterdir()
                if not p.name.startswith(".") and p.suffix != ".crdownload"
            ]
            if files:
                return files[0]
            time.sleep(0.1)
        raise AssertionError(
            f"no download finished in {timeout} s; folder has {list(self.downloads.iterdir())}"
        )

    def wait_for_text(self, selector: str, fragment: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for text in self.visible_text(selector):
                if fragment in text:
                    return text
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {selector!r} showed {fragment!r}; visible: {self.visible_text(selector)}"
                )
            time.sleep(0.1)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Chromium or chromedriver is not installed: apt-get install chromium chromium-driver")
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[test]'")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    session = Browser(tmp_path / "chromium-profile", downloads)
    yield session
    session.driver.quit()
