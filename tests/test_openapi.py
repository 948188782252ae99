"""GET /openapi.json: a valid OpenAPI document that describes every report in the catalog."""

from __future__ import annotations

from pathlib import Path

import httpx
from openapi_spec_validator import validate

from tests.conftest import write_report

TOKEN = "openapi-test-token-0123456789"


def test_openapi_document_is_valid(start_server) -> None:
    server = start_server()

    response = httpx.get(server.url + "/openapi.json")

    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.")


def test_openapi_lists_every_report(start_server, queries_dir: Path) -> None:
    write_report(queries_dir, "no_params", "-- A report without parameters.\nSELECT 1 AS one")
    server = start_server(STREAMER_QUERIES_DIR=str(queries_dir))
    names = [report["name"] for report in httpx.get(server.url + "/reports").json()["reports"]]

    paths = httpx.get(server.url + "/openapi.json").json()["paths"]

    assert sorted(names) == ["daily_sales", "no_params", "sales"]
    for name in names:
        assert f"/reports/{name}.csv" in paths
        assert f"/reports/{name}/validate" in paths
    assert [p["name"] for p in paths["/reports/no_params.csv"]["get"]["parameters"]] == ["_excel"]
    assert paths["/reports/no_params.tsv"]["get"]["parameters"] == []


def test_openapi_parameters_and_errors(start_server) -> None:
    server = start_server()

    operation = httpx.get(server.url + "/openapi.json").json()["paths"]["/reports/sales.csv"]["get"]

    parameters = {p["name"]: p for p in operation["parameters"]}
    assert list(parameters) == ["from_date", "to_date", "product_ids", "_excel"]
    assert parameters["_excel"]["schema"] == {"type": "boolean", "default": False}
    assert parameters["from_date"]["in"] == "query"
    assert parameters["from_date"]["required"] is True
    assert parameters["from_date"]["schema"] == {"type": "string", "format": "date"}
    assert parameters["product_ids"]["required"] is False
    assert parameters["product_ids"]["schema"]["type"] == "array"
    assert parameters["product_ids"]["schema"]["items"]["type"] == "integer"
    assert parameters["product_ids"]["schema"]["default"] == []
    assert "text/csv" in operation["responses"]["200"]["content"]
    for status in ("400", "401", "404", "429", "500", "503", "504"):
        assert status in operation["responses"]
    tsv = httpx.get(server.url + "/openapi.json").json()["paths"]["/reports/sales.tsv"]["get"]
    assert "_excel" not in {p["name"] for p in tsv["parameters"]}


def test_openapi_needs_token_when_tokens_set(start_server) -> None:
    server = start_server(STREAMER_API_TOKENS=TOKEN)

    anonymous = httpx.get(server.url + "/openapi.json")
    allowed = httpx.get(server.url + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})

    assert anonymous.status_code == 401
    assert allowed.status_code == 200
    document = allowed.json()
    validate(document)
    assert document["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/healthz"]["get"]["security"] == []
