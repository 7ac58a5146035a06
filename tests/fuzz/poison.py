"""Hypothesis strategies that plant hostile values in what schemathesis generates.

From the schema alone schemathesis rarely puts a NUL or a number past 64 bits in the one field
where it hurts. Each generated query, path and body is here either kept as is or has one of its
leaves replaced: a string gets NUL or odd (but valid) unicode spliced in, an integer becomes huge
(beyond int64). Surrogates are left out: they are not valid in UTF-8 JSON (tests/input sends
them as escapes). Headers are left alone: HTTP clients and servers refuse NUL there themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

ODD_TEXT = [
    "\x00",  # PostgreSQL's text and jsonb refuse it
    "\U0001d518\U0001f9c9",  # astral plane: 4-byte UTF-8
    "e\u0301",  # combining mark
    "\u202eevil\u202c",  # right-to-left override
    "\u200b\u200d\ufeff",  # zero-width space, joiner, byte order mark
    "\U0010ffff",  # the last code point
    "\u05e9\u05dc\u05d5\u05dd",  # right-to-left script
]
HUGE_INTEGERS = [2**63, 2**63 - 1, -(2**63) - 1, 2**64, 10**30, -(10**30)]

Path = tuple[str | int, ...]


def _leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    elif isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        yield path, value


def _replace(value: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], tuple(rest), new)}
    copy = list(value)
    copy[head] = _replace(copy[head], tuple(rest), new)  # type: ignore[index]
    return copy


def _hostile(original: Any) -> st.SearchStrategy[Any]:
    if isinstance(original, str):
        # NUL half the time: it is the one PostgreSQL refuses; the rest must round-trip.
        odd = st.just("\x00") | st.sampled_from(ODD_TEXT)
        return st.tuples(odd, st.integers(0, len(original))).map(
            lambda spliced: original[: spliced[1]] + spliced[0] + original[spliced[1] :]
        )
    return st.sampled_from(HUGE_INTEGERS) | st.integers(min_value=2**63, max_value=2**80)


def poisoned(value: Any) -> st.SearchStrategy[Any]:
    """`value` with one leaf replaced by a hostile one (three times in four), or as it is.

    One leaf only: with several, the first refused field would hide what the others reach."""
    leaves = list(_leaves(value))
    if not leaves:
        return st.just(value)
    one_leaf = st.sampled_from(leaves).flatmap(
        lambda leaf: _hostile(leaf[1]).map(lambda new: _replace(value, leaf[0], new))
    )
    return st.sampled_from([True, True, True, False]).flatmap(
        lambda poison: one_leaf if poison else st.just(value)
    )
