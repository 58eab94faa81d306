"""The one error body of the clinician service and the reading room, and the statuses their routes document, so
that each OpenAPI document says what its app answers. Pydantic only: the web layers build on it."""
from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every refusal: one sentence for a person and, for a malformed request, the fields at fault (never values)."""

    detail: str = Field(description="what went wrong, in one sentence")
    fields: list[str] | None = Field(default=None, description="422 only: the request fields at fault")


MEANING = {
    400: "bad request",
    401: "sign in first, or the API token is missing or wrong",
    403: "refused: role, CSRF token or origin",
    404: "no such resource (or not yours)",
    409: "conflicts with the current state",
    413: "body larger than the limit",
    415: "unsupported media type",
    422: "invalid request: the fields at fault are named",
    429: "too many requests: see Retry-After",
    503: "not ready yet",
}


def error_responses(*statuses: int) -> dict[int, dict]:
    """A route's ``responses=``: each status with the shared error body (FastAPI then drops its own 422 model)."""
    return {status: {"model": ErrorBody, "description": MEANING[status]} for status in statuses}
