"""The report page at GET /: one form per report, built from its declared parameters.

The page contains no report data, so it is served without an access token. The downloads and the
parameter checks it makes go through the same access rules as any other client.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from streamer.catalog import Catalog, Report
from streamer.formats import FORMATS
from streamer.params import Parameter

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# The HTML input for each scalar type. A list of any type is a textarea, one item per line.
INPUT_TYPES = {
    "int": "number",
    "float": "number",
    "date": "date",
    "datetime": "datetime-local",
    "bool": "checkbox",
    "text": "text",
}


@dataclass(frozen=True)
class FormField:
    """One parameter as the page shows it."""

    parameter: Parameter
    input_type: str
    """An `<input type>`, or `textarea` for a list."""
    value: str
    """The initial value: the parameter's default in the form the input expects."""

    @property
    def step(self) -> str | None:
        return {"int": "1", "float": "any", "datetime": "1"}.get(self.parameter.type.scalar.name)

    @property
    def checked(self) -> bool:
        return self.input_type == "checkbox" and self.value == "true"


def form_field(parameter: Parameter) -> FormField:
    if parameter.type.is_list:
        items = parameter.default if not parameter.required else []
        return FormField(parameter, "textarea", "\n".join(input_value(item) for item in items))
    value = "" if parameter.required else input_value(parameter.default)
    input_type = INPUT_TYPES[parameter.type.scalar.name]
    if isinstance(parameter.default, datetime) and parameter.default.tzinfo is not None:
        input_type = "text"  # a `datetime-local` input cannot hold the default's UTC offset
    return FormField(parameter, input_type, value)


def input_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def report_forms(catalog: Catalog) -> list[tuple[Report, list[FormField]]]:
    return [(report, [form_field(p) for p in report.parameters]) for report in catalog]


def content_security_policy(nonce: str) -> str:
    """Allow only the page's own inline script and style, requests to this origin, and no framing.

    The page takes access tokens, so no other script may run in it and no other site may frame it.
    """
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


async def report_page(request: Request) -> Response:
    nonce = secrets.token_urlsafe(16)
    context = {
        "reports": report_forms(request.app.state.catalog),
        "formats": list(FORMATS),
        "tokens_required": bool(request.app.state.settings.api_tokens),
        "nonce": nonce,
    }
    response = templates.TemplateResponse(request, "page.html", context)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = content_security_policy(nonce)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
