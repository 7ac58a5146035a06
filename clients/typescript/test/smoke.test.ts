/**
 * The example flow against a live server (JSON-body refresh tokens): register, log in, refresh,
 * storefront, checkout with an Idempotency-Key and its replay, `paid` over the order stream after
 * a signed webhook, typed errors, logout.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { runFlow } from "../examples/flow.js";
import { type Stack, startStack } from "./support/stack.js";

let stack: Stack;

before(async () => {
  stack = await startStack({ modes: ["body"], corsOrigins: ["http://localhost:5173"] });
});

after(async () => {
  await stack?.close();
});

test("the example flow runs against a live server", { timeout: 120_000 }, async () => {
  const baseUrl = stack.urls.body;
  assert.ok(baseUrl);
  const intentsBefore = stack.stripe.intents.size;
  const report = await runFlow({ baseUrl, refreshMode: "body", harness: stack.harness(baseUrl) });

  assert.equal(report.vendorCanSell, true);
  assert.equal(report.storefrontHasListing, true);
  assert.match(report.meEmail, /^buyer-.+@example\.com$/);
  assert.equal(report.refreshGaveNewAccessToken, true);
  assert.equal(report.refreshesForTwoExpiredCalls, 1);

  assert.equal(report.firstReplayed, false);
  assert.equal(report.replayReplayed, true);
  assert.equal(report.replaySamePayment, true);
  // The replay did not reach Stripe: one PaymentIntent for the two checkouts.
  assert.equal(stack.stripe.intents.size, intentsBefore + 1);
  const creates = stack.stripe.requests.filter((r) => r.method === "POST" && r.path === "/v1/payment_intents");
  assert.equal(creates.length, 1);
  assert.equal(creates[0]?.idempotencyKey, `payment:${report.paymentId}:create`);

  assert.equal(report.streamStatuses[0], "pending_payment");
  assert.equal(report.streamStatuses.at(-1), "paid");
  assert.deepEqual(report.resumedStatuses, report.streamStatuses.slice(1));

  assert.deepEqual(
    { status: report.notFound.status, code: report.notFound.code },
    { status: 404, code: "order_not_found" },
  );
  assert.match(report.notFound.requestId ?? "", /^[0-9a-f]{32}$/);
  assert.equal(report.validation.status, 422);
  assert.equal(report.validation.code, "validation_error");
  assert.ok(report.validation.fields.some((f) => f.startsWith("body.items.0.quantity")), report.validation.fields.join());
  assert.deepEqual(report.afterLogout, { status: 401, code: "invalid_refresh_token" });
});
