"""The OpenAPI document, completed with what the framework cannot know.

* Every error response is `application/problem+json` with the `Problem` schema — including the
  422 FastAPI documents as `HTTPValidationError`.
* Routes behind a token document 401 (`not_authenticated`, `invalid_token`); routes of an audience
  (buyer/vendor/admin) document 403 (`role_not_allowed`); routes with a path id document 404;
  routes with a body document 400 (`bad_request`), 413 (`payload_too_large`) and 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from marketplace_api.errors import PROBLEM_CONTENT_TYPE, Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
AUDIENCE_PREFIXES = ("/v1/buyer/", "/v1/vendor/", "/v1/admin/")


def operation_id(route: APIRoute) -> str:
    """`{tag}-{name}`, so a generated TypeScript client reads `buyer-create_order`-like names.

    Also the `operation` label of the HTTP metrics."""
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}}}


def _complete_operation(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, response in responses.items():
        if status.startswith(("4", "5")):
            # One shape for every error, whatever a route declared.
            response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}}
    if "422" in responses:
        responses["422"]["description"] = "Request validation failed (`validation_error`)"
    if operation.get("security"):
        responses.setdefault(
            "401", _problem("Missing or invalid token (`not_authenticated`, `invalid_token`)")
        )
    if path.startswith(AUDIENCE_PREFIXES):
        responses.setdefault("403", _problem("Another role's endpoint (`role_not_allowed`)"))
    if "{" in path:
        responses.setdefault("404", _problem("Not found, or not yours (`not_found`)"))
    if "requestBody" in operation:
        responses.setdefault(
            "400", _problem("The body could not be read, e.g. not UTF-8 (`bad_request`)")
        )
        responses.setdefault("413", _problem("Request body too large (`payload_too_large`)"))
        responses.setdefault("422", _problem("Request validation failed (`validation_error`)"))


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi
    completed = False

    def openapi() -> dict[str, Any]:
        nonlocal completed
        document = generate()  # FastAPI's own, cached on the app
        if completed:
            return document
        completed = True
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                _complete_operation(path, operation)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in problem.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas["Problem"] = problem
        return document

    app.openapi = openapi  # type: ignore[method-assign]
