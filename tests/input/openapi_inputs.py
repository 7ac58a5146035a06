"""Every input the API reads, derived from its OpenAPI document: each query, path and header
parameter and each field of each request body (nested models and list items included), with its
JSON schema. A field or route added later is found here without anyone listing it."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

from marketplace_api.cli import openapi_document

# The webhook body is Stripe's signed event, opaque to the schema: its own tests cover it.
OPAQUE_BODIES = {("POST", "/webhooks/stripe")}


@cache
def document() -> dict[str, Any]:
    return json.loads(openapi_document())  # type: ignore[no-any-return]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document()["components"]["schemas"][name]
    return schema


def branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of a schema (`anyOf`/`oneOf`), each resolved."""
    schema = resolve(schema)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options is None:
        return [schema]
    return [b for option in options for b in branches(option) if b.get("type") != "null"]


@dataclass(frozen=True)
class Input:
    method: str
    path: str
    location: str  # query | path | header | body
    name: tuple[str | int, ...]  # the parameter name, or the path of the field in the body
    schema: dict[str, Any]  # one non-null alternative
    media_type: str | None = None  # of the body

    @property
    def role(self) -> str | None:
        """Who may call the route (its guard runs before validation of the body)."""
        for audience in ("buyer", "vendor", "admin"):
            if self.path.startswith(f"/v1/{audience}/"):
                return audience
        return "buyer" if self.path == "/v1/auth/me" else None

    @property
    def loc(self) -> list[str | int]:
        return [self.location, *self.name]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.location}:{'.'.join(map(str, self.name))}"


def _body_fields(
    schema: dict[str, Any], prefix: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    for branch in branches(schema):
        kind = branch.get("type")
        if kind == "object" and "properties" in branch:
            for field, sub in branch["properties"].items():
                yield from _body_fields(sub, (*prefix, field))
        elif kind == "array":
            yield from _body_fields(branch.get("items", {}), (*prefix, 0))
        else:
            yield prefix, branch


def inputs() -> list[Input]:
    found: list[Input] = []
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            method = method.upper()
            for parameter in operation.get("parameters", []):
                for branch in branches(parameter["schema"]):
                    found.append(Input(method, path, parameter["in"], (parameter["name"],), branch))
            if (method, path) in OPAQUE_BODIES:
                continue
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                for name, branch in _body_fields(content["schema"], ()):
                    found.append(Input(method, path, "body", name, branch, media_type))
    return found


def is_text(schema: dict[str, Any]) -> bool:
    """Free text: a string that is not an enum or a constant."""
    return schema.get("type") == "string" and "enum" not in schema and "const" not in schema


def is_integer(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "integer"


def _nest(name: tuple[str | int, ...], value: Any) -> Any:
    if not name:
        return value
    head, *rest = name
    inner = _nest(tuple(rest), value)
    return [inner] if isinstance(head, int) else {head: inner}


def concrete_path(path: str, name: str | None = None, value: str = "") -> str:
    """`path` with every parameter a fresh UUID, except `name` set to `value` (URL-quoted)."""

    def fill(match: re.Match[str]) -> str:
        return quote(value, safe="") if match.group(1) == name else str(uuid.uuid4())

    return re.sub(r"\{([^}]+)\}", fill, path)


def request_args(field: Input, value: Any) -> dict[str, Any]:
    """httpx arguments sending `value` in `field` (the other inputs left out)."""
    args: dict[str, Any] = {"method": field.method, "url": concrete_path(field.path)}
    if field.location == "path":
        args["url"] = concrete_path(field.path, str(field.name[0]), str(value))
    elif field.location == "query":
        args["params"] = {str(field.name[0]): value}
    elif field.location == "header":
        args["headers"] = {str(field.name[0]): value}
    elif field.media_type == "application/x-www-form-urlencoded":
        args["data"] = {str(field.name[0]): value}
    else:
        # Serialised here (ASCII escapes) so values a UTF-8 encoder refuses can be sent.
        args["content"] = json.dumps(_nest(field.name, value))
        args["headers"] = {"Content-Type": "application/json"}
    return args


def errors_at(body: dict[str, Any], field: Input) -> list[dict[str, Any]]:
    """The response's field errors about `field` (a union adds its member to the loc)."""
    wanted = [str(part).lower() for part in field.loc]
    return [
        error
        for error in body.get("errors") or []
        if [str(part).lower() for part in error["loc"][: len(wanted)]] == wanted
    ]
