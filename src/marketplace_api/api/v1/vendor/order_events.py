"""Live order status for vendors: GET /v1/vendor/orders/{order_id}/events (Server-Sent Events)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from marketplace_api.deps import AppStateDep, CurrentVendorUser, SessionDep
from marketplace_api.errors import problem_responses
from marketplace_api.inputs import Text
from marketplace_api.live.broadcaster import broadcaster_for
from marketplace_api.live.docs import STREAM_DESCRIPTION, STREAM_RESPONSE
from marketplace_api.live.service import check_vendor_order
from marketplace_api.live.sse import SSE_HEADERS, order_event_stream, parse_last_event_id
from marketplace_api.orders.exceptions import OrderNotFound

router = APIRouter(tags=["vendor"])


@router.get(
    "/orders/{order_id}/events",
    summary="Stream the order's status changes (Server-Sent Events)",
    description=STREAM_DESCRIPTION,
    response_class=StreamingResponse,
    responses={**STREAM_RESPONSE, **problem_responses(OrderNotFound)},
)
async def stream_order_events(
    order_id: uuid.UUID,
    request: Request,
    user: CurrentVendorUser,
    session: SessionDep,
    state: AppStateDep,
    last_event_id: Annotated[
        Text | None, Header(max_length=100, description="Resume after this event id.")
    ] = None,
) -> StreamingResponse:
    await check_vendor_order(session, user, order_id)
    await session.close()  # give the connection back: the stream may last for hours
    stream = order_event_stream(
        sessionmaker=state.sessionmaker,
        broadcaster=broadcaster_for(request.app.state, state.engine),
        order_id=order_id,
        last_event_id=parse_last_event_id(last_event_id),
        heartbeat=state.settings.sse_heartbeat_seconds,
        is_disconnected=request.is_disconnected,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
