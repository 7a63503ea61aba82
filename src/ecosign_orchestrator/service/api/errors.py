"""API errors: one exception type, and handlers that turn every failure into a clear 4xx body."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecosign_orchestrator.core import errors

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer with a status code."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        fields: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.fields = fields or []
        self.headers = headers


def problem(
    status: int,
    detail: str,
    fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON error body every error uses."""
    return JSONResponse(
        {"detail": detail, "errors": fields or []}, status_code=status, headers=headers
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for error in exc.errors():
        ctx: Any = error.get("ctx") or {}
        if error.get("type") == "json_invalid" and isinstance(ctx, dict) and ctx.get("error"):
            # Strict parsing reports "body.<field>: <reason>" (see limits.StrictJSONRequest).
            where, sep, what = str(ctx["error"]).partition(": ")
            field = where.removeprefix("body").lstrip(".") if sep else ""
            out.append({"field": field or "body", "reason": what if sep else where})
            continue
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        out.append({"field": ".".join(loc) or "body", "reason": reason})
    return out


def install(app: FastAPI) -> None:
    """Register the handlers."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.detail, exc.fields, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "invalid request", _field_errors(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(errors.JobNotFound)
    async def _not_found(request: Request, exc: errors.JobNotFound) -> JSONResponse:
        return problem(404, str(exc))

    @app.exception_handler(errors.IllegalTransition)
    async def _illegal(request: Request, exc: errors.IllegalTransition) -> JSONResponse:
        return problem(409, str(exc))

    @app.exception_handler(errors.DuplicateJob)
    async def _duplicate(request: Request, exc: errors.DuplicateJob) -> JSONResponse:
        return problem(409, str(exc))

    @app.exception_handler(errors.IdempotencyConflict)
    async def _conflict(request: Request, exc: errors.IdempotencyConflict) -> JSONResponse:
        return problem(409, str(exc))

    @app.exception_handler(errors.InvalidJob)
    async def _invalid(request: Request, exc: errors.InvalidJob) -> JSONResponse:
        return problem(422, "invalid request", [{"field": exc.field, "reason": exc.reason}])

    @app.exception_handler(errors.UnknownJobKind)
    async def _unknown(request: Request, exc: errors.UnknownJobKind) -> JSONResponse:
        return problem(422, str(exc), [{"field": "kind", "reason": str(exc)}])

    @app.exception_handler(errors.RepositoryError)
    async def _store(request: Request, exc: errors.RepositoryError) -> JSONResponse:
        logger.warning("store unavailable: %s", exc, extra={"action": "api_store_error"})
        return problem(
            503, "the job store is unavailable; retry later", headers={"Retry-After": "5"}
        )
