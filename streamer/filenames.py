"""The `Content-Disposition` header of a download: a file name built from report and parameters."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from streamer.params import Parameter

# Common file systems (ext4, NTFS, APFS) allow names of 255 bytes or UTF-16 units. The margin leaves
# room for the " (1)" that a browser adds to a name that exists already.
MAX_NAME_BYTES = 200
UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._-]+")
# Characters no file name should carry: path separators, quotes and the ones Windows rejects.
UNSAFE_CHARACTERS = frozenset('/\\:*?"<>|;')
# Unicode categories that are invisible or change how a name displays: controls, format characters
# such as the bidirectional overrides that make "gpj.exe" read "exe.jpg", line and paragraph
# separators, surrogates, private use and unassigned code points.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
UNSAFE_RUN = re.compile("\x00+")
# Names Windows reserves for devices, whatever the extension.
WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10))}
)


def attachment(
    report: str, parameters: tuple[Parameter, ...], bindings: dict[str, Any], extension: str
) -> str:
    """Return a header value with an ASCII `filename` and the UTF-8 `filename*` (RFC 6266).

    Both names are built from safe characters only, so no quote, CR or LF can reach the header.
    """
    parts = [report] + [value_text(bindings[p.name]) for p in parameters if p.name in bindings]
    stem = "_".join(part for part in parts if part)
    max_stem_bytes = MAX_NAME_BYTES - len(extension) - 1

    unicode_stem = unicode_file_stem(stem, max_stem_bytes)
    ascii_stem = ascii_file_stem(unicode_stem)

    unicode_name = f"{unicode_stem}.{extension}"
    header = f'attachment; filename="{ascii_stem}.{extension}"'
    if unicode_name != f"{ascii_stem}.{extension}":
        header += f"; filename*=UTF-8''{quote(unicode_name, safe='')}"
    return header


def unicode_file_stem(stem: str, max_bytes: int) -> str:
    """Return stem in NFC with each run of unsafe or invisible characters replaced by `_`."""
    normalized = unicodedata.normalize("NFC", stem)
    marked = "".join("\x00" if is_unsafe(character) else character for character in normalized)
    text = UNSAFE_RUN.sub("_", marked)
    while len(text.encode()) > max_bytes:
        text = text[:-1]
    return not_a_device(text.strip(" ._") or "report")


def ascii_file_stem(unicode_stem: str) -> str:
    """Return an ASCII stem: accents and other non-ASCII characters dropped, other unsafe ones as `_`."""
    text = unicodedata.normalize("NFKD", unicode_stem).encode("ascii", "ignore").decode()
    return not_a_device(UNSAFE_ASCII.sub("_", text).strip("._") or "report")


def is_unsafe(character: str) -> bool:
    return character in UNSAFE_CHARACTERS or unicodedata.category(character) in INVISIBLE_CATEGORIES


def not_a_device(stem: str) -> str:
    """Return stem with `_` after its first part when Windows reserves that part, as in `con_.csv`."""
    device, dot, rest = stem.partition(".")
    return f"{device}_{dot}{rest}" if device.upper() in WINDOWS_DEVICES else stem


def value_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "-".join(value_text(item) for item in value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
