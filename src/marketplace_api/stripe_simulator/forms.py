"""Stripe's request bodies: form-encoding with bracket syntax, and parameter validation.

`decode_form("metadata[a]=1&items[0][x]=2")` → `{"metadata": {"a": "1"}, "items": [{"x": "2"}]}`.
A `Spec` tree per endpoint says which parameters exist and their types; `Obj.check` refuses an
unknown parameter (`parameter_unknown`), a missing required one (`parameter_missing`) and a value
of the wrong type, each naming the parameter as Stripe does (`transfer_data[destination]`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from marketplace_api.stripe_simulator.errors import (
    StripeAPIError,
    missing_parameter,
    unknown_parameter,
)

_TOKEN = re.compile(r"\[([^\]]*)\]")


def _tokens(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    return [head, *(_TOKEN.findall("[" + rest) if rest else [])]


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {k: _listify(v) for k, v in node.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return node


def decode_form(body: str) -> dict[str, Any]:
    """Decode Stripe's form encoding into nested dicts and lists (values stay strings)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        tokens = _tokens(key)
        node = root
        for i, token in enumerate(tokens):
            last = i == len(tokens) - 1
            if token == "":  # `expand[]=a&expand[]=b`: append
                token = str(sum(1 for k in node if k.isdigit()))
            if last:
                node[token] = value
            else:
                child = node.get(token)
                if not isinstance(child, dict):
                    child = {}
                    node[token] = child
                node = child
    result: dict[str, Any] = _listify(root)
    return result


def _bad(param: str, message: str) -> StripeAPIError:
    return StripeAPIError(400, message, param=param, code="parameter_invalid", saved=False)


class Spec:
    def check(self, value: Any, param: str) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Str(Spec):
    max_length: int = 5000

    def check(self, value: Any, param: str) -> Any:
        if not isinstance(value, str):
            raise _bad(param, f"Invalid string: {param} must be a string.")
        if len(value) > self.max_length:
            raise _bad(param, f"Invalid string: {param} must be at most {self.max_length} chars.")
        return value


@dataclass(frozen=True)
class Int(Spec):
    minimum: int | None = None

    def check(self, value: Any, param: str) -> Any:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?\d+", value))
        ):
            raise _bad(param, f"Invalid integer: {value}")
        number = int(value)
        if self.minimum is not None and number < self.minimum:
            raise _bad(param, f"Invalid {param}: must be at least {self.minimum}")
        return number


@dataclass(frozen=True)
class Bool(Spec):
    def check(self, value: Any, param: str) -> Any:
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise _bad(param, f"Invalid boolean: {value}")


@dataclass(frozen=True)
class Enum(Spec):
    values: tuple[str, ...]

    def check(self, value: Any, param: str) -> Any:
        if value not in self.values:
            raise _bad(param, f"Invalid {param}: must be one of {', '.join(self.values)}")
        return value


@dataclass(frozen=True)
class OneOf(Spec):
    """The first alternative that accepts the value (e.g. `delay_days`: an integer or
    `"minimum"`)."""

    options: tuple[Spec, ...]

    def check(self, value: Any, param: str) -> Any:
        errors: list[StripeAPIError] = []
        for option in self.options:
            try:
                return option.check(value, param)
            except StripeAPIError as exc:
                errors.append(exc)
        raise errors[-1]


@dataclass(frozen=True)
class Metadata(Spec):
    """Free-form string keys and values, with Stripe's limits (50 keys, 40/500 characters)."""

    def check(self, value: Any, param: str) -> Any:
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise _bad(param, f"Invalid object: {param} must be a hash")
        if len(value) > 50:
            raise _bad(param, "Invalid metadata: at most 50 keys are allowed")
        for key, item in value.items():
            if len(key) > 40:
                raise _bad(f"{param}[{key}]", "Metadata keys can have at most 40 characters.")
            if not isinstance(item, str):
                raise _bad(f"{param}[{key}]", "Metadata values must be strings.")
            if len(item) > 500:
                raise _bad(f"{param}[{key}]", "Metadata values can have at most 500 characters.")
        return {k: v for k, v in value.items() if v != ""}


@dataclass(frozen=True)
class ListOf(Spec):
    item: Spec

    def check(self, value: Any, param: str) -> Any:
        if value == "":
            return []
        if isinstance(value, dict):  # one item sent as `a[0]` becomes a list; others are wrong
            raise _bad(param, f"Invalid array: {param}")
        if not isinstance(value, list):
            raise _bad(param, f"Invalid array: {param}")
        return [self.item.check(v, f"{param}[{i}]") for i, v in enumerate(value)]


@dataclass(frozen=True)
class Obj(Spec):
    fields: Mapping[str, Spec]
    required: tuple[str, ...] = ()
    # Parameters Stripe accepts on every request of this kind (`expand`).
    common: Mapping[str, Spec] = field(default_factory=dict)

    def check(self, value: Any, param: str = "") -> Any:
        if value == "" and param:
            return {}
        if not isinstance(value, dict):
            raise _bad(param, f"Invalid object: {param} must be a hash")
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = f"{param}[{key}]" if param else key
            spec = self.fields.get(key) or self.common.get(key)
            if spec is None:
                raise unknown_parameter(name)
            out[key] = spec.check(item, name)
        for key in self.required:
            if key not in out or out[key] in ("", None):
                raise missing_parameter(f"{param}[{key}]" if param else key)
        return out


EXPAND = ListOf(Str())


def params(fields: Mapping[str, Spec], *required: str) -> Obj:
    """A request's top-level parameters; `expand` is always allowed, as on Stripe."""
    return Obj(fields, required, common={"expand": EXPAND})
