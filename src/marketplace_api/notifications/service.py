"""Recording a notification in the caller's transaction, and delivering it from a job.

`notify()` inserts the row (`ON CONFLICT (dedupe_key) DO NOTHING`) and, only when it inserted one,
enqueues the send job on the same session: both commit or roll back with the state change that
caused them. The same cause notified twice (a replayed webhook, a retried job) inserts nothing and
enqueues nothing.

`deliver()` runs in the job. It never holds a transaction open across the SMTP conversation:
it claims an attempt and commits, renders and sends, then records the outcome in a new
transaction. A failure is recorded (`last_error`) and re-raised so the queue retries it with
backoff; the last attempt marks the row `failed`. With `SMTP_URL` unset the row becomes `skipped`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.config import Settings
from marketplace_api.jobs.enqueue import enqueue_many
from marketplace_api.notifications.kinds import KINDS, Kind
from marketplace_api.notifications.models import Notification, NotificationStatus
from marketplace_api.notifications.render import render
from marketplace_api.notifications.sender import build_message, send_message

logger = logging.getLogger(__name__)

SEND_TASK = "send_notification"
MAX_ERROR_LENGTH = 2000

_disabled_logged = False

_RECORD_JOB_IDS = text(
    """
    UPDATE notifications SET job_id = job.id, updated_at = now()
    FROM procrastinate_jobs AS job
    WHERE job.id = ANY(CAST(:job_ids AS bigint[]))
      AND notifications.id = CAST(job.args ->> 'notification_id' AS uuid)
    """
)


def dedupe_key(source: str, recipient: str, kind: Kind | str) -> str:
    """`<source>:<recipient>:<kind>`: one email per cause, recipient and kind."""
    return f"{source}:{recipient.strip().lower()}:{Kind(kind).value}"


@dataclass(frozen=True, slots=True)
class Email:
    """One notification to record: `context` must be JSON (ids and timestamps as strings,
    amounts as integers in minor units)."""

    kind: Kind
    recipient: str
    context: Mapping[str, Any]
    dedupe_key: str


async def notify(
    session: AsyncSession,
    kind: Kind | str,
    recipient_email: str,
    context: Mapping[str, Any],
    dedupe_key: str,
) -> uuid.UUID | None:
    """Record the email and enqueue its sending in `session`'s transaction (not committed here).

    Returns the new notification's id, or None when one with this `dedupe_key` exists already.
    """
    created = await notify_many(session, [Email(Kind(kind), recipient_email, context, dedupe_key)])
    return created[0] if created else None


async def notify_many(session: AsyncSession, emails: Sequence[Email]) -> list[uuid.UUID]:
    """`notify` for several emails in three round trips, whatever their number: insert the rows
    (a dedupe key already recorded inserts nothing), enqueue a send job for each new one, and
    record the job ids. Returns the ids of the new notifications."""
    unknown = [e.kind for e in emails if e.kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown notification kind {unknown[0]!r}")
    if not emails:
        return []
    rows: list[dict[str, Any]] = [
        {
            "id": uuid.uuid4(),
            "dedupe_key": e.dedupe_key,
            "kind": e.kind.value,
            "recipient": e.recipient.strip(),
            "context": dict(e.context),
            "status": NotificationStatus.queued,
        }
        for e in emails
    ]
    statement = (  # a parameter list: one multi-row INSERT at execution, compiled once
        insert(Notification)
        .on_conflict_do_nothing(index_elements=[Notification.dedupe_key])
        .returning(Notification.id)
    )
    inserted = set((await session.execute(statement, rows)).scalars())
    created: list[uuid.UUID] = [row["id"] for row in rows if row["id"] in inserted]  # in order
    if not created:
        return []
    job_ids = await enqueue_many(
        session,
        SEND_TASK,
        [{"notification_id": str(notification_id)} for notification_id in created],
    )
    # Each row gets the job that names it (matched on the job's arguments, not on order).
    await session.execute(_RECORD_JOB_IDS, {"job_ids": job_ids})
    return created


async def _move(
    session: AsyncSession, notification_id: uuid.UUID, to: NotificationStatus, **values: Any
) -> bool:
    """The one place a notification's status changes: only a `queued` one moves."""
    moved = await session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.status == NotificationStatus.queued,
        )
        .values(status=to, **values)
        .returning(Notification.id)
    )
    return moved.scalar_one_or_none() is not None


def _log_disabled_once() -> None:
    global _disabled_logged
    if not _disabled_logged:
        _disabled_logged = True
        logger.warning("email notifications are disabled: SMTP_URL is not set")


async def deliver(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    notification_id: uuid.UUID,
    *,
    final_attempt: bool,
) -> NotificationStatus | None:
    """Send one queued notification. Raises when sending failed (the job is retried)."""
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(Notification).where(Notification.id == notification_id).with_for_update()
            )
        ).scalar_one_or_none()
        if row is None:
            await session.commit()
            return None
        if row.status is not NotificationStatus.queued:
            await session.commit()
            return row.status  # already sent (a duplicate job run) or given up
        if settings.smtp_url is None:
            _log_disabled_once()
            await _move(
                session,
                notification_id,
                NotificationStatus.skipped,
                last_error="SMTP_URL is not set",
            )
            await session.commit()
            return NotificationStatus.skipped
        kind, recipient, context = row.kind, row.recipient, dict(row.context)
        row.attempts += 1
        await session.commit()

    try:
        email = render(
            kind, context, locale=settings.email_locale, frontend_url=settings.frontend_url
        )
        message = build_message(
            email,
            sender=settings.email_from,
            recipient=recipient,
            message_key=notification_id,
            kind=kind,
        )
        await send_message(settings, message)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
        async with sessionmaker() as session:
            if final_attempt:
                await _move(session, notification_id, NotificationStatus.failed, last_error=error)
            else:
                await session.execute(
                    update(Notification)
                    .where(Notification.id == notification_id)
                    .values(last_error=error)
                )
            await session.commit()
        logger.warning(
            "notification not sent",
            extra={
                "notification_id": str(notification_id),
                "kind": kind,
                # The type and SMTP code only: SMTP errors quote the recipient's address (the
                # row's last_error keeps the whole message for the operator).
                "error": type(exc).__name__,
                "smtp_code": getattr(exc, "code", None),
                "final": final_attempt,
            },
        )
        raise
    async with sessionmaker() as session:
        await _move(
            session,
            notification_id,
            NotificationStatus.sent,
            sent_at=datetime.now(UTC),
            last_error=None,
        )
        await session.commit()
    logger.info("notification sent", extra={"notification_id": str(notification_id), "kind": kind})
    return NotificationStatus.sent
