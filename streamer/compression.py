"""Content encodings of a download body: identity, or gzip flushed after every piece.

Starlette's GZipMiddleware delays data until its buffer fills, so a streamed download would lose
its heartbeats. Here each piece of the body is compressed and
sync-flushed at once, and a heartbeat under gzip is an empty flush: bytes on the wire that
decode to nothing, so the decoded body is exactly the report without heartbeats.
"""

from __future__ import annotations

import threading
import zlib
from typing import ClassVar, Protocol

# zlib's window bits for a gzip header and trailer instead of a zlib one.
GZIP_WBITS = 16 + zlib.MAX_WBITS


class Encoding(Protocol):
    compresses: ClassVar[bool]
    headers: ClassVar[dict[str, str]]

    def encode(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...

    def finish(self, data: bytes) -> bytes: ...


class IdentityEncoding:
    compresses: ClassVar[bool] = False
    headers: ClassVar[dict[str, str]] = {"Vary": "Accept-Encoding"}

    def encode(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""

    def finish(self, data: bytes) -> bytes:
        return data


class GzipEncoding:
    """One gzip stream; safe to call from the render thread and a heartbeat thread at once."""

    compresses: ClassVar[bool] = True
    headers: ClassVar[dict[str, str]] = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}

    def __init__(self) -> None:
        self.compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, GZIP_WBITS)
        self.lock = threading.Lock()

    def encode(self, data: bytes) -> bytes:
        """Return data compressed and sync-flushed, so the client can decode all of it now."""
        with self.lock:
            return self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH)

    def flush(self) -> bytes:
        """Return an empty sync-flush block: 5 bytes on the wire, nothing decoded."""
        with self.lock:
            # zlib skips a flush that repeats the previous one with no input in between. A call with
            # no input resets that state, so every heartbeat reaches the wire.
            return self.compressor.compress(b"") + self.compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self, data: bytes) -> bytes:
        """Return data compressed, followed by the end of the gzip stream."""
        with self.lock:
            return self.compressor.compress(data) + self.compressor.flush(zlib.Z_FINISH)


def negotiate_encoding(accept_encoding: str | None) -> Encoding:
    """Return gzip when the Accept-Encoding header accepts it (RFC 9110 §12.5.3), else identity."""
    qualities: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        coding, _, parameters = item.partition(";")
        qualities[coding.strip().lower()] = quality(parameters)

    gzip_quality = qualities.get("gzip", qualities.get("x-gzip", qualities.get("*", 0.0)))
    return GzipEncoding() if gzip_quality > 0 else IdentityEncoding()


def quality(parameters: str) -> float:
    """Return the q value of one Accept-Encoding item's parameters: 1 when absent, 0 when invalid."""
    name, _, value = parameters.partition("=")
    if name.strip().lower() != "q":
        return 1.0
    try:
        return float(value.strip())
    except ValueError:
        return 0.0
