"""Settings from the environment, and the README's table of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamer.config import ConfigError, Settings, normalize_database_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgres://user:p%40ss@host:5432/db?sslmode=require",
            "postgresql://user:p%40ss@host:5432/db?sslmode=require",
        ),
        ("postgresql://user:pw@host/db", "postgresql://user:pw@host/db"),
        ("postgresql+psycopg2://user@host/db", "postgresql+psycopg2://user@host/db"),
        ("sqlite:////tmp/x.sqlite3", "sqlite:////tmp/x.sqlite3"),
    ],
)
def test_database_url_scheme_only_rewritten(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_streamer_database_url_takes_precedence() -> None:
    settings = Settings.from_environ(
        {"DATABASE_URL": "postgres://primary/db", "STREAMER_DATABASE_URL": "postgres://replica/db"}
    )

    assert settings.database_url == "postgresql://replica/db"


def test_empty_database_url_means_demo() -> None:
    settings = Settings.from_environ({"DATABASE_URL": "", "STREAMER_DEMO_DATABASE": "/tmp/demo.sqlite3"})

    assert settings.uses_demo_database
    assert settings.effective_database_url == "sqlite:////tmp/demo.sqlite3"


@pytest.mark.parametrize(
    ("env", "phrase"),
    [
        ({"STREAMER_CHUNK_ROWS": "ten"}, "STREAMER_CHUNK_ROWS='ten' is invalid"),
        ({"STREAMER_CHUNK_ROWS": "0"}, "too small"),
        ({"STREAMER_CHUNK_ROWS": "100000000000"}, "too large: the maximum is 1000000"),
        ({"STREAMER_HEARTBEAT_SECONDS": "nan"}, "finite"),
        ({"PORT": "70000"}, "too large"),
        ({"STREAMER_LOG_LEVEL": "loud"}, "expected one of debug"),
        ({"STREAMER_ALLOW_ANONYMOUS": "maybe"}, "expected 1 or 0"),
        ({"DATABASE_URL": "no-scheme"}, "has no scheme"),
    ],
)
def test_invalid_settings_rejected(env: dict[str, str], phrase: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(phrase)):
        Settings.from_environ(env)


def test_default_limit_follows_memory_budget() -> None:
    assert Settings.from_environ({}).max_concurrent == 4
    assert Settings.from_environ({"STREAMER_MEMORY_MB": "1024"}).max_concurrent == 10
    assert Settings.from_environ({"STREAMER_MAX_CONCURRENT": "2"}).max_concurrent == 2


def test_every_setting_documented() -> None:
    names = set(
        re.findall(r'"((?:STREAMER_[A-Z_]+)|PORT|DATABASE_URL)"', (ROOT / "streamer/config.py").read_text())
    )
    readme = (ROOT / "README.md").read_text()

    assert names  # the pattern still finds the settings
    for name in sorted(names):
        assert f"| `{name}` |" in readme, f"{name} is missing from the README's settings table"
