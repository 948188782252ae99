"""The OpenAPI 3.1 document of the HTTP interface, generated from the report catalog.

Each report gets one path per output format, with its declared parameters as query parameters,
so that client generators and API explorers see the same types, defaults and required flags that
`bind()` enforces.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from streamer import __version__
from streamer.catalog import Catalog, Report
from streamer.formats import FORMATS
from streamer.params import BIGINT_MAX, BIGINT_MIN, Parameter, json_value

OPENAPI_VERSION = "3.1.0"

# JSON Schema of each scalar parameter type; the string forms are what `bind()` parses.
SCALAR_SCHEMAS: dict[str, dict[str, Any]] = {
    "int": {"type": "integer", "format": "int64", "minimum": BIGINT_MIN, "maximum": BIGINT_MAX},
    "float": {"type": "number", "format": "double"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "bool": {"type": "boolean"},
    "text": {"type": "string"},
}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What is wrong and how to fix it."},
        "parameter": {"type": ["string", "null"], "description": "The parameter at fault."},
        "expected": {"type": "string", "description": "What a valid value looks like."},
        "sqlstate": {"type": ["string", "null"], "description": "The database's SQLSTATE code."},
    },
}

# Error statuses a download can end with before its body begins, with what each means.
DOWNLOAD_ERRORS = {
    "400": "A parameter is missing, unknown or invalid, or the database rejected a value.",
    "401": "The access token is missing or invalid.",
    "404": "The report or the format does not exist.",
    "429": "Too many downloads are running; retry after the seconds in Retry-After.",
    "500": "The query failed.",
    "503": "The database is unreachable, or the server is shutting down.",
    "504": "The query hit the database's statement timeout.",
}


def build_document(catalog: Catalog, tokens_required: bool) -> dict[str, Any]:
    """Return the OpenAPI document for catalog's reports and the service's fixed endpoints."""
    paths: dict[str, Any] = {
        "/reports": {"get": list_operation()},
        "/healthz": {"get": health_operation()},
        "/metrics": {"get": metrics_operation()},
    }
    for report in catalog:
        paths[f"/reports/{report.name}/validate"] = {"get": validate_operation(report)}
        for extension, output in FORMATS.items():
            paths[f"/reports/{report.name}.{extension}"] = {
                "get": download_operation(report, extension, output.media_type)
            }

    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "report-streamer", "version": __version__},
        "paths": paths,
        "components": {"schemas": {"Error": ERROR_SCHEMA}},
    }
    if tokens_required:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
        paths["/healthz"]["get"]["security"] = []
    return document


def parameter_object(parameter: Parameter) -> dict[str, Any]:
    scalar = dict(SCALAR_SCHEMAS[parameter.type.scalar.name])
    schema: dict[str, Any] = {"type": "array", "items": scalar} if parameter.type.is_list else scalar
    if not parameter.required:
        schema["default"] = json_value(parameter.default)

    description = parameter.description or f"Expected: {parameter.type.expected}."
    if parameter.type.is_list:
        description += " Repeat the key for each item, or give one comma-separated value."
    return {
        "name": parameter.name,
        "in": "query",
        "required": parameter.required,
        "description": description,
        "schema": schema,
        "style": "form",
        "explode": True,
    }


def error_responses(statuses: dict[str, str]) -> dict[str, Any]:
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {status: {"description": text, "content": error_content} for status, text in statuses.items()}


def download_operation(report: Report, extension: str, media_type: str) -> dict[str, Any]:
    content_type = media_type.split(";")[0].strip()
    return {
        "operationId": f"download_{report.name}_{extension}",
        "summary": report.description or f"Download the {report.name} report.",
        "description": (
            "Streams the report. While no rows are ready the body carries heartbeat bytes that "
            "readers of the format skip. A body that fails after it began ends with a marker "
            "line and without the final chunk of the chunked encoding."
        ),
        "tags": ["reports"],
        "parameters": [parameter_object(p) for p in report.parameters] + option_objects(extension),
        "responses": {
            "200": {
                "description": f"The report as {extension}, sent as an attachment.",
                "headers": {
                    "Content-Disposition": {"schema": {"type": "string"}},
                    "X-Download-Id": {"schema": {"type": "string"}},
                },
                "content": {content_type: {"schema": {"type": "string"}}},
            },
            **error_responses(DOWNLOAD_ERRORS),
        },
    }


def option_objects(extension: str) -> list[dict[str, Any]]:
    """Return the download options a format takes; report parameter names never start with `_`."""
    if extension != "csv":
        return []
    excel = {
        "name": "_excel",
        "in": "query",
        "required": False,
        "description": (
            "1 for a spreadsheet-ready CSV: a UTF-8 byte-order mark, CRLF line ends, and text "
            "cells that a spreadsheet would run as a formula prefixed with an apostrophe."
        ),
        "schema": {"type": "boolean", "default": False},
    }
    return [excel]


def validate_operation(report: Report) -> dict[str, Any]:
    statuses = {status: DOWNLOAD_ERRORS[status] for status in ("400", "401", "404")}
    return {
        "operationId": f"validate_{report.name}",
        "summary": f"Check parameters for the {report.name} report without running it.",
        "tags": ["reports"],
        "parameters": [parameter_object(p) for p in report.parameters],
        "responses": {
            "200": {
                "description": "The parameters are valid.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **error_responses(statuses),
        },
    }


def list_operation() -> dict[str, Any]:
    return {
        "operationId": "list_reports",
        "summary": "List the reports with their descriptions and parameters.",
        "tags": ["reports"],
        "responses": {
            "200": {
                "description": "The report catalog.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **error_responses({"401": DOWNLOAD_ERRORS["401"]}),
        },
    }


def health_operation() -> dict[str, Any]:
    return {
        "operationId": "health",
        "summary": "Report that the service can serve; needs no access token.",
        "responses": {
            "200": {
                "description": "The service is up.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    }


def metrics_operation() -> dict[str, Any]:
    return {
        "operationId": "metrics",
        "summary": "Download counters and durations in the Prometheus text format.",
        "responses": {
            "200": {
                "description": "The metrics.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **error_responses({"401": DOWNLOAD_ERRORS["401"]}),
        },
    }


async def openapi_json(request: Request) -> Response:
    catalog: Catalog = request.app.state.catalog
    tokens_required = bool(request.app.state.settings.api_tokens)
    return JSONResponse(build_document(catalog, tokens_required))
