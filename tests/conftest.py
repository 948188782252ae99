"""Shared fixtures: a real PostgreSQL with the demo dataset, and real servers on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from streamer import demo
from streamer.database import create_report_engine

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_QUERIES = ROOT / "queries"
POSTGRES_URL = os.environ.get("STREAMER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
# By default httpx requests gzip, so tests that inspect the raw body request it plain.
IDENTITY = {"Accept-Encoding": "identity"}
# Small enough to load in a second, large enough to span several chunks and both demo years.
DEMO_ROWS = 20_000


def postgres_reason() -> str | None:
    """Return why PostgreSQL cannot be used, or None when it can."""
    engine = create_report_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means the tests must skip
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({type(exc).__name__}); set STREAMER_TEST_DATABASE_URL"
    finally:
        engine.dispose()
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_demo(postgres_url: str) -> str:
    """Return the URL of the test database with the demo tables loaded."""
    demo.load(postgres_url, DEMO_ROWS)
    return postgres_url


@pytest.fixture(scope="session")
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_report_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    demo.ensure_demo_database(path)
    return path


@pytest.fixture
def queries_dir(tmp_path: Path) -> Path:
    """Return a reports folder with the shipped reports, to which a test may add its own."""
    folder = tmp_path / "queries"
    shutil.copytree(SHIPPED_QUERIES, folder)
    return folder


def write_report(folder: Path, name: str, sql: str) -> None:
    (folder / f"{name}.sql").write_text(sql, encoding="utf-8")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A `streamer serve` process on loopback, with its stdout collected for log assertions."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [
            sys.executable,
            "-m",
            "streamer.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.log_file = log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            cwd=log_path.parent,
        )
        self.wait_until_ready()

    def wait_until_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, fragment: str, timeout: float = 10.0) -> str:
        """Return the first log line containing fragment, waiting for it to be written."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                if fragment in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line with {fragment!r} after {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log_file.close()


@pytest.fixture
def start_server(tmp_path: Path, sqlite_demo: Path) -> Iterator:
    """Return a function that starts a server with extra environment; all are stopped after the test.

    Without a database setting in env, the server uses the embedded demo database.
    """
    servers: list[Server] = []

    def start(**env: str) -> Server:
        base = {
            "DATABASE_URL": "",
            "STREAMER_DATABASE_URL": "",
            "STREAMER_DEMO_DATABASE": str(sqlite_demo),
            "STREAMER_QUERIES_DIR": str(SHIPPED_QUERIES),
            "STREAMER_LOG_LEVEL": "debug",
            "STREAMER_ALLOW_ANONYMOUS": "1",
            "STREAMER_API_TOKENS": "",
        }
        server = Server({**base, **env}, tmp_path / f"server{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def child_pids(pid: int) -> list[int]:
    """Return the pids of the live processes whose parent is pid."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def download_pids(server: Server) -> list[int]:
    """Return the server's download children: the forkserver's children, grandchildren of the server."""
    return [grandchild for child in child_pids(server.process.pid) for grandchild in child_pids(child)]


def wait_until(condition, timeout: float, interval: float = 0.05) -> bool:
    """Poll condition until it returns true or timeout seconds pass; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
