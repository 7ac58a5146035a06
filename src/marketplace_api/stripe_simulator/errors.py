"""Stripe's error answers: `{"error": {type, code, message, param}}` with the status Stripe uses,
so the stripe SDK raises the same exception classes it raises against Stripe."""

from __future__ import annotations

from typing import Any


class StripeAPIError(Exception):
    """Raised by an operation; rendered by the HTTP layer as Stripe's error JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        saved: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.extra = extra or {}
        # Stripe does not save an idempotent result for a request that failed validation
        # (`saved=False`); it does for one that executed and failed (a declined card).
        self.saved = saved

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def invalid(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeAPIError:
    return StripeAPIError(status, message, code=code, param=param)


def _parameter_error(message: str, code: str, param: str) -> StripeAPIError:
    # A request refused before it ran: Stripe saves no idempotent answer for it.
    return StripeAPIError(400, message, code=code, param=param, saved=False)


def unknown_parameter(param: str) -> StripeAPIError:
    return _parameter_error(f"Received unknown parameter: {param}", "parameter_unknown", param)


def missing_parameter(param: str) -> StripeAPIError:
    return _parameter_error(f"Missing required param: {param}.", "parameter_missing", param)


def no_such(kind: str, object_id: str, param: str = "id") -> StripeAPIError:
    return StripeAPIError(
        404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


def unexpected_state(message: str, code: str) -> StripeAPIError:
    return StripeAPIError(400, message, code=code)
