"""Rendering a notification: subject, plain text and HTML from Jinja2 templates.

Templates get the notification's stored context plus `locale`, `frontend_url` and two helpers:
`money(amount, currency)` (minor units → the locale's currency format) and `when(timestamp)`.
HTML templates are autoescaped; subjects and plain text are not (they are not HTML).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from marketplace_api.notifications.formatting import format_money, format_when
from marketplace_api.notifications.kinds import KINDS, Kind


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("marketplace_api.notifications", "templates"),
        # `.html` templates are escaped; subjects (strings) and `.txt` bodies are not HTML.
        autoescape=select_autoescape(["html"], default_for_string=False, default=False),
        undefined=StrictUndefined,  # a missing value is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _money(locale: str, amount: int, currency: str) -> str:
    return format_money(amount, currency, locale)


def _when(locale: str, value: datetime | str | None) -> str:
    return "—" if value is None else format_when(value, locale)


def render(
    kind: Kind | str, context: Mapping[str, Any], *, locale: str, frontend_url: str
) -> RenderedEmail:
    kind = Kind(kind)
    values: dict[str, Any] = {
        **context,
        "locale": locale,
        "frontend_url": frontend_url.rstrip("/"),
        "money": partial(_money, locale),
        "when": partial(_when, locale),
    }
    env = _environment()
    subject = env.from_string(KINDS[kind].subject).render(values)
    return RenderedEmail(
        subject=" ".join(subject.splitlines()).strip(),  # one line, whatever the values held
        text=env.get_template(f"{kind.value}.txt").render(values),
        html=env.get_template(f"{kind.value}.html").render(values),
    )
