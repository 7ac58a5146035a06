"""notifications and order event stream

`notifications`: one row per email (UNIQUE dedupe_key: never sent twice for one cause).
`order_events`: the history of each order's visible state, written by triggers on `orders` (status
or fulfilment status changed) and `payments` (status or failure code changed: one row per order of
the payment).
Each trigger calls `pg_notify('order_events', '<order_id>:<event id>')`; PostgreSQL delivers it at
commit, so the SSE streams (`marketplace_api.live`) only ever push committed changes, whatever
code path made them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDER_EVENT_FROM_ORDER = """
CREATE FUNCTION marketplace_order_event_from_order() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    event_id bigint;
BEGIN
    INSERT INTO order_events
        (order_id, payment_id, kind, status, fulfilment_status, payment_status,
         payment_failure_code)
    SELECT NEW.id, NEW.payment_id, 'order', NEW.status, NEW.fulfilment_status, p.status,
           p.failure_code
    FROM payments p WHERE p.id = NEW.payment_id
    RETURNING id INTO event_id;
    PERFORM pg_notify('order_events', NEW.id::text || ':' || event_id::text);
    RETURN NULL;
END;
$$;
"""

ORDER_EVENT_FROM_PAYMENT = """
CREATE FUNCTION marketplace_order_event_from_payment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    event record;
BEGIN
    FOR event IN
        INSERT INTO order_events
            (order_id, payment_id, kind, status, fulfilment_status, payment_status,
             payment_failure_code)
        SELECT o.id, NEW.id, 'payment', o.status, o.fulfilment_status, NEW.status,
               NEW.failure_code
        FROM orders o WHERE o.payment_id = NEW.id
        RETURNING order_events.id, order_events.order_id
    LOOP
        PERFORM pg_notify('order_events', event.order_id::text || ':' || event.id::text);
    END LOOP;
    RETURN NULL;
END;
$$;
"""

ORDER_TRIGGER = """
CREATE TRIGGER orders_order_events
AFTER UPDATE OF status, fulfilment_status ON orders
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status
      OR OLD.fulfilment_status IS DISTINCT FROM NEW.fulfilment_status)
EXECUTE FUNCTION marketplace_order_event_from_order();
"""

PAYMENT_TRIGGER = """
CREATE TRIGGER payments_order_events
AFTER UPDATE OF status, failure_code ON payments
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status
      OR (NEW.failure_code IS NOT NULL AND OLD.failure_code IS DISTINCT FROM NEW.failure_code))
EXECUTE FUNCTION marketplace_order_event_from_payment();
"""


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("dedupe_key", sa.String(length=600), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "sent",
                "failed",
                "skipped",
                name="notification_status",
                native_enum=False,
                length=16,
            ),
            server_default="queued",
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notifications_dedupe_key")),
    )
    op.create_index(
        "ix_notifications_status_created_at",
        "notifications",
        ["status", "created_at"],
        unique=False,
    )
    op.create_table(
        "order_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("fulfilment_status", sa.String(length=16), nullable=False),
        sa.Column("payment_status", sa.String(length=24), nullable=False),
        sa.Column("payment_failure_code", sa.String(length=255), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_events_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_order_events_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
    )
    op.create_index("ix_order_events_order_id_id", "order_events", ["order_id", "id"], unique=False)
    op.execute(ORDER_EVENT_FROM_ORDER)
    op.execute(ORDER_EVENT_FROM_PAYMENT)
    op.execute(ORDER_TRIGGER)
    op.execute(PAYMENT_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS payments_order_events ON payments")
    op.execute("DROP TRIGGER IF EXISTS orders_order_events ON orders")
    op.execute("DROP FUNCTION IF EXISTS marketplace_order_event_from_payment()")
    op.execute("DROP FUNCTION IF EXISTS marketplace_order_event_from_order()")
    op.drop_index("ix_order_events_order_id_id", table_name="order_events")
    op.drop_table("order_events")
    op.drop_index("ix_notifications_status_created_at", table_name="notifications")
    op.drop_table("notifications")
