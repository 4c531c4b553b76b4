"""Every failure the API answers, in the agentmail SDK's error shape, decided in one place.

A body is `{"name", "message"}` (agentmail/types/error_response.py); a 400 is the SDK's
ValidationError and adds `errors`, one `{"path", "message"}` per invalid field
(validation_error_response.py). The SDK picks its exception by status code (404 NotFoundError,
400 ValidationError, 409 ConflictError, 422 UnprocessableError) and by itself repeats requests
answered 408, 409, 429 or 5xx, so those answers are only given where repeating is harmless.

Resources raise a `Problem`, or let a store error through; the handlers installed here turn each
into its response, unknown routes and wrong methods included, and anything unexpected into a
500 that says nothing more: never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mailgate.store import errors as store_errors

log = logging.getLogger(__name__)

# Seconds a client is asked to wait before repeating a request the store could not serve.
RETRY_AFTER_UNAVAILABLE = 1


@dataclass(frozen=True, slots=True)
class FieldError:
    path: tuple[str | int, ...]  # () for the request as a whole
    message: str


class Problem(HTTPException):
    """An answer other than success: a status, the SDK's error name and a message."""

    status: ClassVar[int] = 500
    name: ClassVar[str] = "InternalServerError"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(self.status, message, headers)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"name": self.name, "message": self.message}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class Invalid(Problem):
    status = 400
    name = "ValidationError"

    def __init__(self, errors: Sequence[FieldError]) -> None:
        described = "; ".join(
            f"{'.'.join(map(str, e.path))}: {e.message}" if e.path else e.message for e in errors
        )
        super().__init__(f"invalid request: {described}")
        self.errors = list(errors)

    @classmethod
    def field(cls, name: str, message: str) -> Invalid:
        return cls([FieldError((name,), message)])

    def body(self) -> dict[str, Any]:
        errors = [{"path": list(e.path), "message": e.message} for e in self.errors]
        return {**super().body(), "errors": errors}


class Unauthorized(Problem):
    status = 401
    name = "UnauthorizedError"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(Problem):
    status = 403
    name = "ForbiddenError"


class NotFound(Problem):
    status = 404
    name = "NotFoundError"


class MethodNotAllowed(Problem):
    status = 405
    name = "MethodNotAllowedError"


class Conflict(Problem):
    status = 409
    name = "ConflictError"


class ContentTooLarge(Problem):
    status = 413
    name = "ContentTooLargeError"


class Unprocessable(Problem):
    status = 422
    name = "UnprocessableError"


class RateLimited(Problem):
    status = 429
    name = "RateLimitError"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, headers={"Retry-After": str(int(retry_after) + 1)})


class NotImplementedHere(Problem):
    """A feature of the hosted AgentMail that this gateway does not offer."""

    status = 501
    name = "NotImplementedError"


class Unavailable(Problem):
    status = 503
    name = "ServiceUnavailableError"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})


# Statuses that Starlette itself raises (no route, wrong method…), by the problem they are.
_BY_STATUS: dict[int, type[Problem]] = {
    p.status: p for p in (Forbidden, NotFound, MethodNotAllowed, Conflict, ContentTooLarge)
}


def from_store(exc: store_errors.StoreError) -> Problem:
    """The one mapping of store errors to answers."""
    if isinstance(exc, store_errors.NotFound):
        return NotFound(str(exc))
    if isinstance(exc, store_errors.AlreadyExists):
        return Conflict(str(exc))
    if isinstance(exc, store_errors.InvalidName):
        return Invalid([FieldError((), str(exc))])
    if isinstance(exc, store_errors.CannotModify):
        # 403, not 409: the SDK would repeat a 409, and no repeat makes this allowed.
        return Forbidden(str(exc))
    if isinstance(exc, store_errors.LimitExceeded):
        return Unprocessable(str(exc))
    if isinstance(exc, store_errors.OverQuota):
        # 422, not 507: the SDK repeats a 5xx, and a repeat finds the inbox just as full.
        return Unprocessable(f"nothing was stored: an inbox is {exc}")
    if isinstance(exc, store_errors.Unavailable):
        return Unavailable("the database is unavailable; try again shortly")
    log.error("unexpected store error: %r", exc)
    return Problem("internal error")


@contextlib.contextmanager
def naming(field: str) -> Iterator[None]:
    """A name the store refuses inside this block was the request's `field`."""
    try:
        yield
    except store_errors.InvalidName as exc:
        raise Invalid.field(field, str(exc)) from None


def install(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(store_errors.StoreError, _store)
    app.add_exception_handler(Exception, _unexpected)


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return exc.response()


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = _BY_STATUS.get(exc.status_code)
    if exc.status_code == 404:
        message = f"{request.method} {request.url.path} is not part of this API"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    if kind is None:
        if exc.status_code == 400:
            return Invalid([FieldError((), message)]).response()
        kind = Problem
    problem = kind(message, headers=dict(exc.headers or {}))
    return JSONResponse(problem.body(), status_code=exc.status_code, headers=exc.headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return Invalid([_field_error(e) for e in exc.errors()]).response()


def _field_error(error: Any) -> FieldError:
    location = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        reason = error.get("ctx", {}).get("error", "")
        return FieldError((), f"the body is not valid JSON ({reason})")
    # ("body", "username"), ("query", "limit"): the field is named as the SDK names it.
    if location and location[0] in ("body", "query", "path", "header"):
        location = location[1:]
    return FieldError(location, str(error.get("msg", "invalid")))


async def _store(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, store_errors.StoreError)
    services = getattr(request.app.state, "services", None)
    if services is not None:
        services.metrics.store_error(exc)
    return from_store(exc).response()


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The server's log has the traceback (uvicorn logs what the application raised).
    return Problem("internal error").response()
