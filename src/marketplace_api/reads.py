"""Read schemas filled from ORM rows by attribute name."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

_S = TypeVar("_S", bound=BaseModel)


def read_from(schema: type[_S], row: object, **fields: Any) -> _S:
    """`schema` with every field read from `row`'s attribute of the same name, except the
    `fields` given here: values computed by the caller, renamed attributes, and relations the
    async session has not loaded (reading one would query)."""
    values = {name: getattr(row, name) for name in schema.model_fields if name not in fields}
    return schema.model_validate({**values, **fields})
