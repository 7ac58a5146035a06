export {
  CSRF_HEADER,
  MarketplaceClient,
  createMarketplaceClient,
  dataOf,
  isReplayed,
  newIdempotencyKey,
  type ClientOptions,
  type OrderEvent,
  type OrderEventsOptions,
  type OrderStatusData,
  type RefreshMode,
  type Schemas,
  type Session,
} from "./client.js";
export { ApiError, type FieldError, type Problem } from "./errors.js";
export { EventStreamParser, type ServerSentEvent } from "./sse.js";
export type { components, operations, paths } from "./openapi.js";
