"""Email notifications: recorded and enqueued in the transaction of the state change that causes
them (`service.notify`), deduplicated per (source, recipient, kind), sent by a job with retries
(`tasks.send_notification`) over SMTP (`sender`), rendered from Jinja2 templates (`render`)."""
