"""Access control: bearer tokens from STREAMER_API_TOKENS, checked in constant time."""

from __future__ import annotations

import hmac
import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

# Paths served without a token: platforms probe health without credentials, and the report page
# contains no report data (it requests the token and sends it with each request it makes).
PUBLIC_PATHS = frozenset({"/healthz", "/"})


def token_matches(presented: str, tokens: tuple[str, ...]) -> bool:
    """Return whether presented is one of tokens, comparing against every token in constant time."""
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(presented.encode(), token.encode())
    return matched


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None


class TokenAccess:
    """ASGI middleware that requires `Authorization: Bearer <token>` on every non-public path."""

    def __init__(
        self, app: ASGIApp, tokens: tuple[str, ...], public_paths: frozenset[str] = PUBLIC_PATHS
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tokens or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return

        presented = bearer_token(scope)
        if presented is not None and token_matches(presented, self.tokens):
            await self.app(scope, receive, send)
            return

        client = scope.get("client") or ("unknown", 0)
        reason = "missing" if presented is None else "invalid"
        logger.warning(
            "rejected %s %s from %s: %s token", scope["method"], scope["path"][:200], client[0], reason
        )
        message = (
            "Missing access token: send the header 'Authorization: Bearer <token>'."
            if presented is None
            else "Invalid access token: check the token you were given."
        )
        response = JSONResponse({"error": message}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)
