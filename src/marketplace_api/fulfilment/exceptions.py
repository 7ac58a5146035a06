from __future__ import annotations

from marketplace_api.errors import Conflict


class OrderNotShippable(Conflict):
    code = "order_not_shippable"
    title = "The order cannot be shipped"


class OrderNotShipped(Conflict):
    code = "order_not_shipped"
    title = "The order has not been shipped yet"
