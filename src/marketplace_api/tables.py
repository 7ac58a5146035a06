"""Core statements on mapped tables, for the hot paths: built once at import, run with bound
parameters.

An ORM statement built per call pays for its construction, its cache key and the ORM's bulk
machinery on every execution; a Core statement on the model's `Table`, built once, has its cache
key memoized and goes straight to the connection. Parameters whose names are the table's columns
and that the statement does not bind itself become the `SET` of an `UPDATE` (or the `VALUES` of an
`INSERT`), so one prebuilt statement serves every set of values. `load_row` hands a `RETURNING`
row to the ORM object it updated, as `populate_existing` would.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import Row, Table, inspect
from sqlalchemy.orm import DeclarativeBase, attributes


def table_of(model: type[DeclarativeBase]) -> Table:
    """The model's table."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to one table")
    return table


@cache
def _column_names(table: Table) -> frozenset[str]:
    return frozenset(table.c.keys())


def columns(table: Table, values: Mapping[str, Any]) -> Mapping[str, Any]:
    """`values`, each of which must name a column of `table`: a Core statement would drop an
    unknown name without a word (the ORM refuses it)."""
    unknown = values.keys() - _column_names(table)
    if unknown:
        raise ValueError(f"{table.name} has no column {sorted(unknown)[0]!r}")
    return values


@cache
def _attribute_names(model: type[DeclarativeBase]) -> tuple[tuple[str, str], ...]:
    """(column key, attribute name) of every column of the model's table."""
    mapper = inspect(model)
    return tuple(
        (column.key, mapper.get_property_by_column(column).key) for column in table_of(model).c
    )


def load_row(obj: DeclarativeBase, row: Row[Any]) -> None:
    """Set `obj`'s attributes to `row` (every column of its table, e.g. `RETURNING *`) as the
    database's values: committed state, nothing to flush."""
    values = row._mapping
    for column, name in _attribute_names(type(obj)):
        attributes.set_committed_value(obj, name, values[column])
