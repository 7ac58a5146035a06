/**
 * The typed marketplace-api client: openapi-fetch over the generated `paths`, plus what every SPA
 * needs around it — the bearer token, one refresh at a time on a 401 (rotating refresh tokens, in
 * the JSON body or in an HttpOnly cookie), an `Idempotency-Key` on the POSTs that take one (kept on
 * the client's own retry), problem+json errors thrown as `ApiError`, and the order event stream.
 */
import createClient, { type Client } from "openapi-fetch";

import { ApiError, type Problem } from "./errors.js";
import type { components, paths } from "./openapi.js";
import { IDEMPOTENT_POSTS } from "./operations.js";
import { EventStreamParser } from "./sse.js";

export type Schemas = components["schemas"];

/**
 * Where the refresh token travels. `body` (the API's default): in the JSON of the token
 * responses, kept by this client in memory (persist it with `onSession` if you must).
 * `cookie` (`REFRESH_TOKEN_COOKIE=true` on the server): in an HttpOnly cookie the page's code never
 * sees; the client sends `credentials: "include"` and the CSRF header on login, refresh, logout.
 */
export type RefreshMode = "body" | "cookie";

export interface Session {
  accessToken: string;
  /** Body mode only. */
  refreshToken?: string | undefined;
  /** Epoch milliseconds. */
  expiresAt: number;
}

export interface ClientOptions {
  /** The API's origin (and path prefix, if any), e.g. `https://api.example.com`. */
  baseUrl: string;
  refreshMode?: RefreshMode;
  /** A session restored from storage (body mode). */
  session?: Session | null;
  /** Called with every new session, and with `null` when it ends (logout, refresh refused). */
  onSession?: (session: Session | null) => void;
  fetch?: (request: Request) => Promise<Response>;
  /** A 503/429 (or 409 `idempotency_key_in_use`) is retried once when `Retry-After` ≤ this. */
  maxRetryAfterSeconds?: number;
}

/** The header the API requires on refresh and logout in cookie mode (with an allowed Origin). */
export const CSRF_HEADER = "X-Requested-With";
const CSRF_VALUE = "marketplace-client";
const AUTH_ROUTES = new Set(["/v1/auth/token", "/v1/auth/refresh", "/v1/auth/logout"]);
const IDEMPOTENT = IDEMPOTENT_POSTS.map(
  (template) => new RegExp(`^${template.replace(/\{[^/{}]+\}/g, "[^/]+")}$`),
);

export interface OrderStatusData {
  order_id: string;
  status: Schemas["OrderStatus"];
  fulfilment_status: Schemas["FulfilmentStatus"];
  payment_status: Schemas["PaymentStatus"];
  payment_failure_code: string | null;
  at: string;
}

export interface OrderEvent {
  /** Resend as `lastEventId` to resume after this event. */
  id: string | undefined;
  event: string;
  data: OrderStatusData;
}

export interface OrderEventsOptions {
  audience?: "buyer" | "vendor";
  /** Resume after this event id (the stream replays what came after it). */
  lastEventId?: string | undefined;
  signal?: AbortSignal;
  /** Reconnect (with `Last-Event-ID`) when the connection drops; default true. */
  reconnect?: boolean;
}

/** True when the API answered from its idempotency store (a repeated `Idempotency-Key`). */
export function isReplayed(response: Response): boolean {
  return response.headers.get("Idempotent-Replayed") === "true";
}

/** The body of a successful call (this client throws `ApiError` for every other answer). */
export function dataOf<T>(result: { data?: T; response: Response }): T {
  if (result.data === undefined) {
    throw new Error(`${result.response.url} answered ${result.response.status} without a body`);
  }
  return result.data;
}

export function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // randomUUID exists only in secure contexts (https, localhost): a v4 UUID by hand otherwise.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

export class MarketplaceClient {
  /** The typed client: `api.GET("/v1/platform/listings", …)`; throws `ApiError` on non-2xx. */
  readonly api: Client<paths>;
  readonly refreshMode: RefreshMode;
  private readonly baseUrl: string;
  private readonly basePath: string;
  private readonly baseFetch: (request: Request) => Promise<Response>;
  private readonly onSession: ((session: Session | null) => void) | undefined;
  private readonly maxRetryAfter: number;
  private current: Session | null;
  private refreshing: Promise<Session> | null = null;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.basePath = new URL(this.baseUrl).pathname.replace(/\/+$/, "");
    this.refreshMode = options.refreshMode ?? "body";
    this.current = options.session ?? null;
    this.onSession = options.onSession;
    this.maxRetryAfter = options.maxRetryAfterSeconds ?? 5;
    const given = options.fetch;
    this.baseFetch = given ?? ((request) => globalThis.fetch(request));
    this.api = createClient<paths>({ baseUrl: this.baseUrl, fetch: (request) => this.send(request) });
  }

  get session(): Session | null {
    return this.current;
  }

  async register(body: Schemas["UserCreate"]): Promise<Schemas["UserRead"]> {
    return dataOf(await this.api.POST("/v1/auth/register", { body }));
  }

  /** OAuth2 password flow (the e-mail is the `username`). */
  async login(email: string, password: string): Promise<Session> {
    const result = await this.api.POST("/v1/auth/token", {
      body: { username: email, password, scope: "" },
      bodySerializer: (body) => new URLSearchParams(body as Record<string, string>),
      headers: { "Content-Type": "application/x-www-form-urlencoded", ...this.csrfHeaders() },
      credentials: this.credentials(),
    });
    return this.store(dataOf(result));
  }

  /**
   * Exchange the refresh token for a new pair. Concurrent callers (and 401s) share one request:
   * the token is single-use, so a second refresh with it would revoke the whole family.
   */
  refresh(): Promise<Session> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** Revoke the refresh token's family on the server and forget the session. */
  async logout(): Promise<void> {
    try {
      if (this.refreshMode === "cookie") {
        await this.api.POST("/v1/auth/logout", {
          headers: this.csrfHeaders(),
          credentials: "include",
        });
      } else if (this.current?.refreshToken) {
        await this.api.POST("/v1/auth/logout", {
          body: { refresh_token: this.current.refreshToken },
        });
      }
    } finally {
      this.setSession(null);
    }
  }

  /**
   * The order's status changes as Server-Sent Events, over fetch (an `EventSource` cannot send the
   * token): the current state first, then each change. Reconnects with `Last-Event-ID` after the
   * server's `retry` delay; a 401 refreshes the token once. Stop with `break` or the signal.
   */
  async *orderEvents(orderId: string, options: OrderEventsOptions = {}): AsyncGenerator<OrderEvent> {
    const audience = options.audience ?? "buyer";
    const url = `${this.baseUrl}/v1/${audience}/orders/${encodeURIComponent(orderId)}/events`;
    const reconnect = options.reconnect ?? true;
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    options.signal?.addEventListener("abort", stop, { once: true });
    if (options.signal?.aborted) controller.abort();
    let lastEventId = options.lastEventId;
    let retryMs = 3000;
    let refreshed = false;
    try {
      while (!controller.signal.aborted) {
        const headers = new Headers({ Accept: "text/event-stream" });
        if (this.current) headers.set("Authorization", `Bearer ${this.current.accessToken}`);
        if (lastEventId !== undefined) headers.set("Last-Event-ID", lastEventId);
        let response: Response;
        try {
          response = await this.baseFetch(new Request(url, { headers, signal: controller.signal }));
        } catch (error) {
          if (controller.signal.aborted) return;
          if (!reconnect) throw error;
          await sleep(retryMs, controller.signal);
          continue;
        }
        if (response.status === 401 && !refreshed && this.canRefresh()) {
          refreshed = true;
          await response.body?.cancel();
          await this.refresh();
          continue;
        }
        if (!response.ok || response.body === null) {
          if (response.status >= 500 && reconnect) {
            await response.body?.cancel();
            await sleep(retryMs, controller.signal);
            continue;
          }
          throw await ApiError.fromResponse(response);
        }
        refreshed = false;
        const parser = new EventStreamParser(lastEventId);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            for (const event of parser.push(value)) {
              lastEventId = event.id;
              yield { id: event.id, event: event.event, data: JSON.parse(event.data) as OrderStatusData };
            }
            lastEventId = parser.lastEventId;
            retryMs = parser.retry ?? retryMs;
          }
        } catch (error) {
          if (controller.signal.aborted) return;
          if (!reconnect) throw error;
        } finally {
          reader.cancel().catch(() => undefined);
        }
        if (!reconnect) return;
        await sleep(retryMs, controller.signal);
      }
    } finally {
      controller.abort();
      options.signal?.removeEventListener("abort", stop);
    }
  }

  // --- internals ------------------------------------------------------------------------------

  private canRefresh(): boolean {
    return this.refreshMode === "cookie" || Boolean(this.current?.refreshToken);
  }

  private credentials(): RequestCredentials | undefined {
    return this.refreshMode === "cookie" ? "include" : undefined;
  }

  private csrfHeaders(): Record<string, string> {
    return this.refreshMode === "cookie" ? { [CSRF_HEADER]: CSRF_VALUE } : {};
  }

  private async doRefresh(): Promise<Session> {
    try {
      if (this.refreshMode === "cookie") {
        const result = await this.api.POST("/v1/auth/refresh", {
          headers: this.csrfHeaders(),
          credentials: "include",
        });
        return this.store(dataOf(result));
      }
      const token = this.current?.refreshToken;
      if (!token) {
        const problem: Problem = {
          type: "about:blank",
          title: "Not logged in",
          status: 401,
          code: "invalid_refresh_token",
          detail: "The client holds no refresh token: log in.",
          instance: null,
          errors: null,
        };
        throw new ApiError(401, problem, new Headers());
      }
      return this.store(dataOf(await this.api.POST("/v1/auth/refresh", { body: { refresh_token: token } })));
    } catch (error) {
      // A refused refresh token is dead (used, revoked or expired): the user must log in again.
      if (error instanceof ApiError && error.status === 401) this.setSession(null);
      throw error;
    }
  }

  private store(pair: Schemas["TokenPair"]): Session {
    const session: Session = {
      accessToken: pair.access_token,
      expiresAt: Date.now() + pair.expires_in * 1000,
    };
    if (this.refreshMode === "body") session.refreshToken = pair.refresh_token ?? undefined;
    this.setSession(session);
    return session;
  }

  private setSession(session: Session | null): void {
    this.current = session;
    this.onSession?.(session);
  }

  private pathOf(url: string): string {
    const path = new URL(url).pathname;
    return path.startsWith(this.basePath) ? path.slice(this.basePath.length) : path;
  }

  /** Every request of `api` goes through here (openapi-fetch hands over a `Request`). */
  private async send(request: Request): Promise<Response> {
    const path = this.pathOf(request.url);
    const authRoute = AUTH_ROUTES.has(path);
    if (
      request.method === "POST" &&
      !request.headers.has("Idempotency-Key") &&
      IDEMPOTENT.some((pattern) => pattern.test(path))
    ) {
      request.headers.set("Idempotency-Key", newIdempotencyKey());
    }
    // A retry is only safe when the server can recognise it: a GET, or a POST with a key.
    const retryable = request.method === "GET" || request.headers.has("Idempotency-Key");
    const original = request.clone(); // every retry sends this same request: same body and key
    let token = authRoute ? undefined : this.current?.accessToken;
    let response = await this.attempt(request, token, retryable ? original : undefined);
    if (response.status === 401 && !authRoute && this.canRefresh()) {
      // Another request may have refreshed while this one was in flight: then just retry.
      if (this.current?.accessToken === token) await this.refresh();
      token = this.current?.accessToken;
      response = await this.attempt(original.clone(), token, undefined);
    }
    if (retryable) {
      const delay = await this.retryDelay(response);
      if (delay !== undefined) {
        await sleep(delay * 1000);
        response = await this.attempt(original.clone(), this.current?.accessToken ?? token, undefined);
      }
    }
    if (!response.ok) throw await ApiError.fromResponse(response);
    return response;
  }

  /** One fetch with the token; a network failure is retried once when `again` is given. */
  private async attempt(request: Request, token: string | undefined, again: Request | undefined): Promise<Response> {
    if (token !== undefined) request.headers.set("Authorization", `Bearer ${token}`);
    try {
      return await this.baseFetch(request);
    } catch (error) {
      if (again === undefined || request.signal.aborted) throw error;
      const retry = again.clone();
      if (token !== undefined) retry.headers.set("Authorization", `Bearer ${token}`);
      return this.baseFetch(retry);
    }
  }

  private async retryDelay(response: Response): Promise<number | undefined> {
    const seconds = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    if (!Number.isFinite(seconds) || seconds < 0 || seconds > this.maxRetryAfter) return undefined;
    if (response.status === 503 || response.status === 429) return seconds;
    if (response.status === 409) {
      const body: unknown = await response.clone().json().catch(() => undefined);
      const code = (body as { code?: unknown } | undefined)?.code;
      if (code === "idempotency_key_in_use") return seconds;
    }
    return undefined;
  }
}

export function createMarketplaceClient(options: ClientOptions): MarketplaceClient {
  return new MarketplaceClient(options);
}
