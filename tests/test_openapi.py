from __future__ import annotations

import json
from pathlib import Path

from marketplace_api.cli import openapi_document

COMMITTED = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    """Regenerate with `marketplace-api export-openapi` when this fails."""
    assert COMMITTED.read_text(encoding="utf-8") == openapi_document()


def test_operation_ids_are_tag_dash_name_and_unique() -> None:
    document = json.loads(openapi_document())
    ids: list[str] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            tag = operation["tags"][0]
            assert operation["operationId"].startswith(f"{tag}-"), (method, path)
            assert operation.get("summary"), (method, path)
            ids.append(operation["operationId"])
    assert len(ids) == len(set(ids))


def test_every_error_response_is_a_problem() -> None:
    document = json.loads(openapi_document())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert "application/problem+json" in response["content"], (method, path)
