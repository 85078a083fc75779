"""
Routing helpers both services' apps (and the control app) are built from: one endpoint factory, the
request helpers (JSON body, integer query parameters, path parameters, paging), the bearer check.

Imported only when the server starts (it needs Starlette).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from airflow_provider_buddy.testing._core import ApiError

Action = Callable[[Request, Any], Any]
"""What an endpoint does: ``(request, parsed JSON body or None) -> a JSON-able answer``; raises ApiError."""
Handler = Callable[[Request], Awaitable[Response]]
ErrorAnswer = Callable[[int, str], Response]
Guard = Callable[[Request], None]

BODY_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def error_response(status: int, message: str) -> JSONResponse:
    """The emulator's usual error form (Buddy's, and the control app's): ``{"errors": [{"message": ...}]}``."""
    return JSONResponse({"errors": [{"message": message}]}, status_code=status)


def endpoint(
    action: Action,
    *,
    guard: Guard | None = None,
    error: ErrorAnswer = error_response,
    status: int = 200,
    bad_input: tuple[type[Exception], ...] = (),
) -> Handler:
    """
    An endpoint: check the request, parse its JSON body, run ``action``, answer its result as JSON.

    :param action: what the endpoint does.
    :param guard: checks the request first (auth, scopes); raises ApiError.
    :param error: how an ApiError is answered.
    :param status: the status of a successful answer.
    :param bad_input: exceptions answered 400 with their text (e.g. ValueError on the control app).
    """

    async def handle(request: Request) -> Response:
        try:
            if guard is not None:
                guard(request)
            body = await json_body(request) if request.method in BODY_METHODS else None
            return JSONResponse(action(request, body), status_code=status)
        except ApiError as exc:
            return error(exc.status, exc.message)
        except bad_input as exc:
            return error(400, str(exc))

    return handle


def require_bearer(request: Request, token: str, message: str) -> None:
    """401 with ``message`` unless the request carries ``Authorization: Bearer <token>``."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or given.strip() != token:
        raise ApiError(401, message)


async def json_body(request: Request) -> Any:
    """The request's JSON body (None when empty), or 400."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "Request body is not valid JSON") from None


def int_param(request: Request, name: str, default: int, minimum: int) -> int:
    """An integer query parameter, or 400."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ApiError(400, f"{name} must be at least {minimum}")
    return value


def paging(request: Request, per_page_name: str, default_per_page: int) -> tuple[int, int]:
    """``(page, per_page)`` from the query (``page`` and ``per_page_name``), or 400."""
    return int_param(request, "page", 1, 1), int_param(request, per_page_name, default_per_page, 1)


def path_param(request: Request, name: str) -> str:
    """A path parameter as text."""
    value: str = request.path_params[name]
    return value


def api_app(routes: Sequence[BaseRoute]) -> Starlette:
    """The API app serving ``routes``; unknown paths and methods answer 404/405 in the usual error form."""
    return Starlette(routes=list(routes), exception_handlers={HTTPException: _http_error})


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "Not found", 405: "Method not allowed"}.get(status, "Error")
    return error_response(status, message)
