"""Settings read once from the environment at startup."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streamer.errors import StreamerError

# Measured with bench/throughput.py on the sales report, about 86 bytes a row (docs/benchmarks.md).
# From 10 000 to 20 000 rows a chunk, CPU time per row fell by 2 to 7 %, but each download's peak
# memory grew by about 35 MiB. Reports with wider rows need fewer rows a chunk.
DEFAULT_CHUNK_ROWS = 10_000


class ConfigError(StreamerError):
    """A setting in the environment is invalid."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    queries_dir: Path
    chunk_rows: int
    queue_chunks: int
    heartbeat_seconds: float
    demo_database: Path
    port: int
    log_level: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=database_url_from(env),
            queries_dir=Path(env.get("STREAMER_QUERIES_DIR", "queries")).resolve(),
            chunk_rows=read_int(env, "STREAMER_CHUNK_ROWS", DEFAULT_CHUNK_ROWS, minimum=1),
            queue_chunks=read_int(env, "STREAMER_QUEUE_CHUNKS", 2, minimum=1),
            heartbeat_seconds=read_float(env, "STREAMER_HEARTBEAT_SECONDS", 10.0, minimum=0.05),
            demo_database=Path(env.get("STREAMER_DEMO_DATABASE", "streamer-demo.sqlite3")).resolve(),
            port=read_int(env, "PORT", 8000, minimum=1, maximum=65535),
            log_level=read_log_level(env),
        )

    @property
    def uses_demo_database(self) -> bool:
        return self.database_url is None

    @property
    def effective_database_url(self) -> str:
        """Return the URL reports run against: the configured one, else the embedded demo file."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{self.demo_database}"


def database_url_from(env: Mapping[str, str]) -> str | None:
    """Return STREAMER_DATABASE_URL, else DATABASE_URL, with Heroku's scheme made SQLAlchemy's.

    STREAMER_DATABASE_URL wins so that reports can run on a read replica while DATABASE_URL stays
    the primary. Empty values count as unset.
    """
    for name in ("STREAMER_DATABASE_URL", "DATABASE_URL"):
        url = env.get(name, "").strip()
        if url:
            return normalize_database_url(url)
    return None


def normalize_database_url(url: str) -> str:
    """Rewrite Heroku's `postgres://` scheme, which SQLAlchemy 1.4+ rejects, to `postgresql://`.

    Only the scheme changes: the password, host and query string stay byte for byte as given.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ConfigError(
            "The database URL has no scheme: expected a URL such as "
            "postgresql://user:password@host:5432/dbname."
        )
    if scheme == "postgres":
        return f"postgresql://{rest}"
    return url


def read_int(
    env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a whole number.") from None
    check_range(name, value, minimum, maximum)
    return value


def read_float(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a number of seconds.") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r} is invalid: expected a finite number of seconds.")
    check_range(name, value, minimum, None)
    return value


def check_range(name: str, value: float, minimum: float, maximum: float | None) -> None:
    if value < minimum:
        raise ConfigError(f"{name}={value} is too small: the minimum is {minimum}.")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is too large: the maximum is {maximum}.")


LOG_LEVELS = ("debug", "info", "warning", "error")


def read_log_level(env: Mapping[str, str]) -> str:
    level = env.get("STREAMER_LOG_LEVEL", "info").strip().lower() or "info"
    if level not in LOG_LEVELS:
        raise ConfigError(
            f"STREAMER_LOG_LEVEL={level!r} is invalid: expected one of {', '.join(LOG_LEVELS)}."
        )
    return level
