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
# A chunk is held several times at once (queue, rendering, socket buffers): at a million rows of
# the demo report that is already hundreds of MB, more than a small host has.
MAX_CHUNK_ROWS = 1_000_000

# The default download limit fits STREAMER_MEMORY_MB: the web process with its forkserver takes
# about BASE_MEMORY_MB and each running download about DOWNLOAD_MEMORY_MB more.
# NOTE: both are estimates from PSS measured with bench/ on the demo reports at the default chunk
# size; wide rows take more per download.
BASE_MEMORY_MB = 160
DOWNLOAD_MEMORY_MB = 80


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
    api_tokens: tuple[str, ...] = ()
    allow_anonymous: bool = False
    max_concurrent: int = 4
    query_timeout_seconds: float = 1800.0
    shutdown_grace_seconds: float = 20.0
    postgres_copy: bool = True

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=database_url_from(env),
            queries_dir=Path(env.get("STREAMER_QUERIES_DIR", "queries")).resolve(),
            chunk_rows=read_int(
                env, "STREAMER_CHUNK_ROWS", DEFAULT_CHUNK_ROWS, minimum=1, maximum=MAX_CHUNK_ROWS
            ),
            queue_chunks=read_int(env, "STREAMER_QUEUE_CHUNKS", 2, minimum=1),
            heartbeat_seconds=read_float(env, "STREAMER_HEARTBEAT_SECONDS", 10.0, minimum=0.05),
            demo_database=Path(env.get("STREAMER_DEMO_DATABASE", "streamer-demo.sqlite3")).resolve(),
            port=read_int(env, "PORT", 8000, minimum=1, maximum=65535),
            log_level=read_log_level(env),
            api_tokens=read_tokens(env),
            allow_anonymous=read_bool(env, "STREAMER_ALLOW_ANONYMOUS"),
            max_concurrent=read_int(env, "STREAMER_MAX_CONCURRENT", default_max_concurrent(env), minimum=1),
            query_timeout_seconds=read_float(env, "STREAMER_QUERY_TIMEOUT_SECONDS", 1800.0, minimum=0.0),
            shutdown_grace_seconds=read_float(env, "STREAMER_SHUTDOWN_GRACE_SECONDS", 20.0, minimum=0.0),
            postgres_copy=read_bool(env, "STREAMER_POSTGRES_COPY", default=True),
        )

    def check_access(self) -> None:
        """Reject a configuration that would serve a real database without any access token."""
        if self.uses_demo_database or self.api_tokens or self.allow_anonymous:
            return
        raise ConfigError(
            "A database is configured but STREAMER_API_TOKENS is not set, so anyone could download "
            "its reports: set STREAMER_API_TOKENS, or set STREAMER_ALLOW_ANONYMOUS=1 to serve it openly."
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


def default_max_concurrent(env: Mapping[str, str]) -> int:
    memory_mb = read_int(env, "STREAMER_MEMORY_MB", 512, minimum=BASE_MEMORY_MB + DOWNLOAD_MEMORY_MB)
    return (memory_mb - BASE_MEMORY_MB) // DOWNLOAD_MEMORY_MB


def read_tokens(env: Mapping[str, str]) -> tuple[str, ...]:
    tokens = tuple(token.strip() for token in env.get("STREAMER_API_TOKENS", "").split(","))
    tokens = tuple(token for token in tokens if token)
    for token in tokens:
        if len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token:
            raise ConfigError(
                "STREAMER_API_TOKENS has a token that is shorter than 16 characters or not printable "
                "ASCII: use long random tokens, for example from `python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`."
            )
    return tokens


def read_bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r} is invalid: expected 1 or 0.")


LOG_LEVELS = ("debug", "info", "warning", "error")


def read_log_level(env: Mapping[str, str]) -> str:
    level = env.get("STREAMER_LOG_LEVEL", "info").strip().lower() or "info"
    if level not in LOG_LEVELS:
        raise ConfigError(
            f"STREAMER_LOG_LEVEL={level!r} is invalid: expected one of {', '.join(LOG_LEVELS)}."
        )
    return level
