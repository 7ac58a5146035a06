/**
 * The client's own behaviour, against a scripted fetch: one refresh for concurrent 401s, the
 * Idempotency-Key kept across the client's retries, problem+json as ApiError, the SSE parser and
 * the stream's Last-Event-ID reconnect.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, EventStreamParser, createMarketplaceClient, dataOf } from "../src/index.js";

const BASE = "https://api.example.test";

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const type = status >= 400 ? "application/problem+json" : "application/json";
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": type, ...headers } });
}

function problem(status: number, code: string, headers: Record<string, string> = {}): Response {
  return json(status, { type: `x/${code}`, title: code, status, code, detail: `${code}!` }, headers);
}

test("concurrent 401s share one refresh and each request is retried once", async () => {
  const seen: string[] = [];
  let refreshes = 0;
  const client = createMarketplaceClient({
    baseUrl: BASE,
    session: { accessToken: "old", refreshToken: "r1", expiresAt: 0 },
    fetch: async (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/v1/auth/refresh") {
        refreshes += 1;
        assert.deepEqual(await request.json(), { refresh_token: "r1" });
        await new Promise((done) => setTimeout(done, 20));
        return json(200, { access_token: "new", token_type: "bearer", expires_in: 900, refresh_token: "r2" });
      }
      const auth = request.headers.get("Authorization") ?? "";
      seen.push(`${path} ${auth}`);
      if (auth !== "Bearer new") return problem(401, "invalid_token", { "WWW-Authenticate": "Bearer" });
      return json(200, { id: "u", email: "a@b.c", role: "buyer", full_name: null, created_at: "x" });
    },
  });
  const results = await Promise.all([
    client.api.GET("/v1/auth/me").then(dataOf),
    client.api.GET("/v1/auth/me").then(dataOf),
    client.api.GET("/v1/auth/me").then(dataOf),
  ]);
  assert.equal(refreshes, 1);
  assert.deepEqual(results.map((r) => r.email), ["a@b.c", "a@b.c", "a@b.c"]);
  assert.equal(seen.filter((s) => s.endsWith("Bearer new")).length, 3);
  assert.equal(client.session?.refreshToken, "r2");
});

test("a refused refresh ends the session and surfaces invalid_refresh_token", async () => {
  const ended: unknown[] = [];
  const client = createMarketplaceClient({
    baseUrl: BASE,
    session: { accessToken: "old", refreshToken: "used", expiresAt: 0 },
    onSession: (session) => ended.push(session),
    fetch: async (request) =>
      new URL(request.url).pathname === "/v1/auth/refresh"
        ? problem(401, "invalid_refresh_token")
        : problem(401, "invalid_token"),
  });
  await assert.rejects(client.api.GET("/v1/auth/me"), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.code, "invalid_refresh_token");
    return true;
  });
  assert.deepEqual(ended, [null]);
  assert.equal(client.session, null);
});

test("idempotent POSTs get a generated key, kept on the retry after 503 Retry-After", async () => {
  const keys: (string | null)[] = [];
  const bodies: string[] = [];
  let calls = 0;
  const client = createMarketplaceClient({
    baseUrl: BASE,
    session: { accessToken: "t", refreshToken: "r", expiresAt: 0 },
    fetch: async (request) => {
      keys.push(request.headers.get("Idempotency-Key"));
      bodies.push(await request.text());
      calls += 1;
      if (calls === 1) return problem(503, "stripe_unavailable", { "Retry-After": "0" });
      return json(201, { payment_id: "p1" }, { "Idempotent-Replayed": "false" });
    },
  });
  const cart = { items: [{ listing_id: "l", quantity: 1 }], shipping: null, contact: null };
  const result = await client.api.POST("/v1/buyer/orders", { body: cart });
  assert.equal(result.response.status, 201);
  assert.equal(calls, 2);
  assert.match(keys[0] ?? "", /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(keys[1], keys[0]);
  assert.equal(bodies[1], bodies[0]);
  assert.deepEqual(JSON.parse(bodies[0] ?? ""), cart);
});

test("a key given by the caller is sent as is; POSTs without a key are never retried", async () => {
  const keys: (string | null)[] = [];
  const client = createMarketplaceClient({
    baseUrl: BASE,
    fetch: async (request) => {
      keys.push(request.headers.get("Idempotency-Key"));
      return problem(503, "stripe_unavailable", { "Retry-After": "0" });
    },
  });
  const cart = { items: [{ listing_id: "l", quantity: 1 }], shipping: null, contact: null };
  await assert.rejects(
    client.api.POST("/v1/buyer/orders", { body: cart, params: { header: { "Idempotency-Key": "mine" } } }),
  );
  assert.deepEqual(keys, ["mine", "mine"]);
  keys.length = 0;
  await assert.rejects(client.api.POST("/v1/vendor/payments/setup"));
  assert.deepEqual(keys, [null]);
});

test("problem+json becomes an ApiError with code, field errors, request id and Retry-After", async () => {
  const client = createMarketplaceClient({
    baseUrl: BASE,
    fetch: async () =>
      json(
        422,
        {
          type: "x/validation_error",
          title: "Request validation failed",
          status: 422,
          code: "validation_error",
          detail: "One or more fields are invalid.",
          errors: [{ loc: ["body", "email"], msg: "bad", type: "value_error" }],
        },
        { "X-Request-ID": "abc123", "Retry-After": "7" },
      ),
  });
  await assert.rejects(client.register({ email: "x", password: "y", role: "buyer", full_name: null }), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 422);
    assert.equal(error.code, "validation_error");
    assert.equal(error.title, "Request validation failed");
    assert.equal(error.detail, "One or more fields are invalid.");
    assert.deepEqual(error.errors[0]?.loc, ["body", "email"]);
    assert.equal(error.requestId, "abc123");
    assert.equal(error.retryAfter, 7);
    return true;
  });
});

test("cookie mode sends credentials and the CSRF header on refresh, and no token in the body", async () => {
  const seen: { credentials: RequestCredentials; csrf: string | null; body: string }[] = [];
  const client = createMarketplaceClient({
    baseUrl: BASE,
    refreshMode: "cookie",
    fetch: async (request) => {
      seen.push({
        credentials: request.credentials,
        csrf: request.headers.get("X-Requested-With"),
        body: await request.text(),
      });
      return json(200, { access_token: "a", token_type: "bearer", expires_in: 900 });
    },
  });
  const session = await client.refresh();
  assert.equal(session.accessToken, "a");
  assert.equal(session.refreshToken, undefined);
  assert.deepEqual(seen, [{ credentials: "include", csrf: "marketplace-client", body: "" }]);
});

test("the SSE parser handles CRLF, split chunks, comments, multi-line data, ids and retry", () => {
  const parser = new EventStreamParser();
  const events = [
    ...parser.push("retry: 3000\r\n\r\n: ping\n\nid: 4"),
    ...parser.push("2\nevent: order.status\ndata: {\"a\":\ndata: 1}\r"),
    ...parser.push("\n\r\ndata: no id\n\n"),
  ];
  assert.equal(parser.retry, 3000);
  assert.deepEqual(events, [
    { id: "42", event: "order.status", data: '{"a":\n1}' },
    { id: "42", event: "message", data: "no id" },
  ]);
});

test("the order stream reconnects with Last-Event-ID after the connection drops", async () => {
  const lastIds: (string | null)[] = [];
  const frame = (id: number, status: string): string =>
    `id: ${id}\nevent: order.status\ndata: ${JSON.stringify({ order_id: "o", status, fulfilment_status: "unfulfilled", payment_status: "requires_payment", payment_failure_code: null, at: "t" })}\n\n`;
  const client = createMarketplaceClient({
    baseUrl: BASE,
    session: { accessToken: "t", expiresAt: 0 },
    fetch: async (request) => {
      lastIds.push(request.headers.get("Last-Event-ID"));
      assert.equal(request.headers.get("Authorization"), "Bearer t");
      const text = lastIds.length === 1 ? `retry: 5\n\n${frame(7, "pending_payment")}` : frame(9, "paid");
      return new Response(text, { status: 200, headers: { "Content-Type": "text/event-stream" } });
    },
  });
  const statuses: string[] = [];
  for await (const event of client.orderEvents("o")) {
    statuses.push(`${event.id} ${event.data.status}`);
    if (event.data.status === "paid") break;
  }
  assert.deepEqual(statuses, ["7 pending_payment", "9 paid"]);
  assert.deepEqual(lastIds, [null, "7"]);
});
