"""Live order status for the SPA: committed status changes pushed over Server-Sent Events.

`order_events` rows are written by database triggers (migration 0007) whenever an order's status
or fulfilment status, or its payment's status, changes — whatever code path made the change — and
each trigger calls `pg_notify('order_events', '<order_id>:<event id>')`, which PostgreSQL delivers
at commit. One LISTEN connection per API process (`broadcaster`) wakes the streams (`stream`) of
that order, which read the new rows and send them.
"""
