"""The send job: one per notification, retried with exponential backoff.

Waits between attempts: 5 s + 3^(n+1) s → 8 s, 14 s, 32 s, 86 s, 248 s, 734 s, 35 min, 1.8 h,
5.5 h, 16 h: an SMTP server down for most of a day loses nothing. After the last attempt the
notification is marked `failed` (and the job stays in procrastinate_jobs as failed).
"""

from __future__ import annotations

import uuid

from procrastinate import JobContext, RetryStrategy

from marketplace_api.jobs.app import app
from marketplace_api.jobs.context import jobs_context
from marketplace_api.notifications.service import deliver

MAX_RETRIES = 10
RETRY = RetryStrategy(max_attempts=MAX_RETRIES, wait=5, exponential_wait=3)


@app.task(name="send_notification", pass_context=True, retry=RETRY)
async def send_notification(context: JobContext, notification_id: str) -> None:
    """Render and send one notification email (see `notifications.service.deliver`)."""
    jobs = jobs_context(context)
    # `attempts` counts the failed runs before this one; procrastinate stops retrying at MAX.
    final = context.job.attempts >= MAX_RETRIES
    await deliver(jobs.sessionmaker, jobs.settings, uuid.UUID(notification_id), final_attempt=final)
