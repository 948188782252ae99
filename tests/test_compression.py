"""Gzip downloads: flushed per piece, heartbeats as empty blocks, decoded body equal to the plain one."""

from __future__ import annotations

import time
import zlib
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from streamer.compression import GzipEncoding, IdentityEncoding, negotiate_encoding
from tests.conftest import write_report

HEARTBEAT = 0.3
# The first row takes longer than the 3 s a response waits for rows before it starts, so
# heartbeats go out before the first rows as well as between them.
SLOW_SQL = (
    "SELECT g AS n, 'x' || g AS label FROM generate_series(1, 4) g,"
    " LATERAL (SELECT pg_sleep(CASE WHEN g = 1 THEN 3.5 WHEN g = 3 THEN 1.2 ELSE 0 END)) s"
)


def start_pair(start_server, postgres_url: str, queries_dir: Path):
    """Return a server that sends heartbeats often and one that sends none during these reports."""
    write_report(queries_dir, "slow", SLOW_SQL)
    write_report(queries_dir, "failing", "SELECT n, 1 / (n - 5) AS x FROM generate_series(1, 10) n")
    env = {
        "STREAMER_DATABASE_URL": postgres_url,
        "STREAMER_QUERIES_DIR": str(queries_dir),
        "STREAMER_CHUNK_ROWS": "2",
    }
    beating = start_server(**env, STREAMER_HEARTBEAT_SECONDS=str(HEARTBEAT))
    quiet = start_server(**env, STREAMER_HEARTBEAT_SECONDS="60")
    return beating, quiet


def gzip_pieces(url: str) -> tuple[list[float], list[bytes], httpx.Headers]:
    """Download url asking for gzip, returning when each raw piece arrived, the pieces and the headers."""
    times: list[float] = []
    pieces: list[bytes] = []
    with httpx.stream("GET", url, headers={"Accept-Encoding": "gzip"}, timeout=30) as response:
        assert response.status_code == 200
        for piece in response.iter_raw():
            times.append(time.monotonic())
            pieces.append(piece)
        return times, pieces, response.headers


@pytest.mark.parametrize(
    ("path", "params"), [("slow.csv", ""), ("slow.jsonl", ""), ("slow.csv", "?_excel=1")]
)
def test_gzip_decodes_to_body_without_heartbeats(
    start_server, postgres_url: str, queries_dir: Path, path: str, params: str
) -> None:
    beating, quiet = start_pair(start_server, postgres_url, queries_dir)

    times, pieces, headers = gzip_pieces(f"{beating.url}/reports/{path}{params}")
    plain = httpx.get(f"{quiet.url}/reports/{path}{params}", headers={"Accept-Encoding": "identity"})

    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    decoded = [decoder.decompress(piece) for piece in pieces]
    assert decoder.eof  # the gzip stream ended properly
    assert b"".join(decoded) == plain.content
    assert decoded.count(b"") >= 4  # heartbeats reached the wire and decode to nothing
    gaps = [later - earlier for earlier, later in pairwise(times)]
    assert max(gaps) < HEARTBEAT + 0.5


def test_httpx_decodes_gzip_like_plain(start_server, postgres_url: str, queries_dir: Path) -> None:
    beating, quiet = start_pair(start_server, postgres_url, queries_dir)

    compressed = httpx.get(f"{beating.url}/reports/slow.jsonl", headers={"Accept-Encoding": "gzip"})
    plain = httpx.get(f"{quiet.url}/reports/slow.jsonl", headers={"Accept-Encoding": "identity"})

    assert compressed.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    assert compressed.content == plain.content


def test_gzip_failure_marker_is_compressed(start_server, postgres_url: str, queries_dir: Path) -> None:
    beating, _ = start_pair(start_server, postgres_url, queries_dir)
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    decoded = bytearray()

    url = f"{beating.url}/reports/failing.csv"
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as response,
    ):
        for piece in response.iter_raw():
            decoded.extend(decoder.decompress(piece))

    assert not decoder.eof  # no gzip trailer: the body is visibly incomplete
    lines = bytes(decoded).decode().splitlines()
    assert lines[:3] == ["n,x", "1,0", "2,0"]
    assert lines[-1].startswith('#"streamer: download failed" download_id=')


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, IdentityEncoding),
        ("", IdentityEncoding),
        ("gzip", GzipEncoding),
        ("GZIP", GzipEncoding),
        ("deflate, gzip;q=0.5", GzipEncoding),
        ("x-gzip", GzipEncoding),
        ("*", GzipEncoding),
        ("gzip;q=0", IdentityEncoding),
        ("gzip;q=0.000, *", IdentityEncoding),
        ("*;q=0", IdentityEncoding),
        ("br, deflate", IdentityEncoding),
        ("gzip;q=invalid", IdentityEncoding),
        ("identity", IdentityEncoding),
    ],
)
def test_accept_encoding_negotiation(header: str | None, expected: type) -> None:
    assert isinstance(negotiate_encoding(header), expected)


def test_gzip_heartbeats_never_empty() -> None:
    encoding = GzipEncoding()
    start = encoding.encode(b"a,b\n")

    heartbeats = [encoding.flush() for _ in range(3)]

    assert start.startswith(b"\x1f\x8b")
    assert heartbeats == [b"\x00\x00\x00\xff\xff"] * 3
    assert (
        zlib.decompress(start + b"".join(heartbeats) + encoding.finish(b"1,2\n"), 16 + zlib.MAX_WBITS)
        == b"a,b\n1,2\n"
    )
