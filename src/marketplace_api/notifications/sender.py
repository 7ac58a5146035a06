"""SMTP: the message (plain text with an HTML alternative) and sending it with aiosmtplib.

`SMTP_URL`: `smtp://user:pass@host:port` (STARTTLS when the server offers it; port 25 by default)
or `smtps://user:pass@host:port` (implicit TLS; port 465 by default).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import unquote, urlsplit

import aiosmtplib

from marketplace_api.config import Settings
from marketplace_api.notifications.render import RenderedEmail


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    use_tls: bool
    username: str | None
    password: str | None


class InvalidSmtpUrl(ValueError):
    pass


def parse_smtp_url(url: str) -> SmtpServer:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise InvalidSmtpUrl("SMTP_URL must look like smtp://user:pass@host:port or smtps://...")
    use_tls = parts.scheme == "smtps"
    return SmtpServer(
        host=parts.hostname,
        port=parts.port or (465 if use_tls else 25),
        use_tls=use_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def build_message(
    email: RenderedEmail,
    *,
    sender: str,
    recipient: str,
    message_key: uuid.UUID,
    kind: str,
) -> EmailMessage:
    """The MIME message. Its Message-ID comes from the notification id, so a message delivered
    twice (a crash between the SMTP answer and our commit) can be recognised as the same one."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "marketplace.local"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = f"<{message_key}@{domain}>"
    message["X-Marketplace-Notification"] = kind
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


async def send_message(settings: Settings, message: EmailMessage) -> None:
    if settings.smtp_url is None:
        raise RuntimeError("SMTP_URL is not set")
    server = parse_smtp_url(settings.smtp_url.get_secret_value())
    await aiosmtplib.send(
        message,
        hostname=server.host,
        port=server.port,
        username=server.username,
        password=server.password,
        use_tls=server.use_tls,
        start_tls=False if server.use_tls else None,  # None: STARTTLS when offered
        timeout=settings.smtp_timeout_seconds,
    )
