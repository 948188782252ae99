"""The headers that docs/deployment.md lists for proxy operators must be the ones downloads carry."""

from __future__ import annotations

import re

import httpx

from tests.conftest import ROOT

DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"


def documented_headers() -> dict[str, str]:
    """Return the headers in the http block under "Headers the service sends"."""
    text = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    section = text.split("## Headers the service sends", 1)[1]
    block = re.search(r"```http\n(.*?)```", section, re.DOTALL)
    assert block, "no ```http block under 'Headers the service sends'"
    headers = {}
    for line in block.group(1).splitlines():
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def test_documented_headers_are_sent(start_server) -> None:
    server = start_server()
    documented = documented_headers()

    response = httpx.get(
        server.url + "/reports/sales.csv", params={"from_date": "2024-01-01", "to_date": "2024-01-02"}
    )

    assert response.status_code == 200
    assert set(documented) == {"cache-control", "x-accel-buffering"}
    for name, value in documented.items():
        assert response.headers.get(name) == value, name
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
