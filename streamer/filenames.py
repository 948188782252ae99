"""The `Content-Disposition` header of a download: a file name built from report and parameters."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from streamer.params import Parameter

MAX_STEM_CHARS = 120
UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._-]+")
# Characters no file name should carry: controls, path separators, quotes and the ones Windows rejects.
UNSAFE_UNICODE = re.compile(r'[\x00-\x1f\x7f-\x9f/\\:*?"<>|;]+')


def attachment(
    report: str, parameters: tuple[Parameter, ...], bindings: dict[str, Any], extension: str
) -> str:
    """Return a header value with an ASCII `filename` and the UTF-8 `filename*` (RFC 6266)."""
    parts = [report] + [value_text(bindings[p.name]) for p in parameters if p.name in bindings]
    stem = "_".join(part for part in parts if part)

    unicode_stem = UNSAFE_UNICODE.sub("_", stem)[:MAX_STEM_CHARS].strip(" ._") or "report"
    ascii_stem = unicodedata.normalize("NFKD", unicode_stem).encode("ascii", "ignore").decode()
    ascii_stem = UNSAFE_ASCII.sub("_", ascii_stem).strip("._") or "report"

    unicode_name = f"{unicode_stem}.{extension}"
    header = f'attachment; filename="{ascii_stem}.{extension}"'
    if unicode_name != f"{ascii_stem}.{extension}":
        header += f"; filename*=UTF-8''{quote(unicode_name, safe='')}"
    return header


def value_text(value: Any) -> str:
    if isinstance(value, list):
        return "-".join(value_text(item) for item in value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
