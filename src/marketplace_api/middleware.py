"""Request body size limit, enforced on the stream (a lying Content-Length does not get past);
security headers on every response."""

from __future__ import annotations

from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace_api.asgi import HTTPMiddleware, StartTrackingSend
from marketplace_api.errors import problem_response


class _BodyTooLarge(StarletteHTTPException):
    """Raised from `receive`; FastAPI lets HTTP exceptions from body reading through, so the
    problem handler renders it as a 413 (and this middleware does if nothing else did)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body must not exceed {max_bytes} bytes.")


class BodySizeLimitMiddleware(HTTPMiddleware):
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        tracking_send = StartTrackingSend(send)
        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not tracking_send.started:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            status=413,
            code="payload_too_large",
            title="Request body too large",
            detail=f"The request body must not exceed {self.max_bytes} bytes.",
            instance=scope.get("path"),
        )
        await response(scope, receive, send)


# Fields that make a response a secret: the browser, a proxy or a shared cache must never keep it.
# Also the single-use links a person is sent to: Express onboarding and dashboard login, and the
# hosted Checkout page (`url`): a cache must not hand them to someone else.
SECRET_RESPONSE_FIELDS = frozenset(
    {"client_secret", "access_token", "refresh_token", "onboarding_url", "url"}
)


def _carries_secret(route: object) -> bool:
    """Whether a route's documented responses have a field named in SECRET_RESPONSE_FIELDS,
    anywhere in their (nested) schema."""
    models = [getattr(route, "response_model", None)]
    models += [r.get("model") for r in (getattr(route, "responses", None) or {}).values()]
    for model in models:
        if model is None:
            continue
        try:
            schema = TypeAdapter(model).json_schema()
        except Exception:  # noqa: S112 - a type without a schema documents no field
            continue
        if SECRET_RESPONSE_FIELDS & _property_names(schema):
            return True
    return False


def _property_names(node: object) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            names.update(properties)
        for value in node.values():
            names |= _property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _property_names(value)
    return names


class SecurityHeadersMiddleware(HTTPMiddleware):
    """Headers every response carries (nosniff, no referrer, no framing; HSTS in production), and
    `Cache-Control: no-store` on the responses of routes that return tokens or a client_secret.

    One pass over `http.response.start`: the fixed headers are prebuilt, and whether a route
    carries a secret is worked out once per route (from its response model) and remembered.
    """

    def __init__(self, app: ASGIApp, *, hsts_max_age: int | None = None) -> None:
        super().__init__(app)
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            # Only framing is restricted: /docs and /redoc run their own inline scripts.
            (b"content-security-policy", b"frame-ancestors 'none'"),
        ]
        if hsts_max_age is not None:
            hsts = f"max-age={hsts_max_age}; includeSubDomains"
            headers.append((b"strict-transport-security", hsts.encode()))
        self.headers = headers
        # By id(): routes are not hashable, and they live as long as the app (and this dict).
        self._secret_routes: dict[int, bool] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers += self.headers
                route = scope.get("route")
                if route is not None:
                    secret = self._secret_routes.get(id(route))
                    if secret is None:
                        secret = self._secret_routes[id(route)] = _carries_secret(route)
                    if secret:
                        headers = [h for h in headers if h[0].lower() != b"cache-control"]
                        headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
