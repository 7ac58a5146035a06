/** What a run of the example flow must show, in Node and in the browser alike. */
import assert from "node:assert/strict";

import type { FlowReport } from "../../examples/flow.js";
import type { StripeStandIn } from "./stripe-standin.js";

export function assertFlowReport(report: FlowReport, stripe: StripeStandIn): void {
  assert.equal(report.vendorCanSell, true);
  assert.equal(report.storefrontHasListing, true);
  assert.match(report.meEmail, /^buyer-.+@example\.com$/);
  assert.equal(report.requestIdEchoed, true);
  assert.equal(report.refreshGaveNewAccessToken, true);
  assert.equal(report.refreshesForTwoExpiredCalls, 1);

  assert.equal(report.firstReplayed, false);
  assert.equal(report.replayReplayed, true);
  assert.equal(report.replaySamePayment, true);
  // The replay did not reach Stripe: one PaymentIntent, created with our row's key.
  const creates = stripe.requests.filter(
    (r) => r.method === "POST" && r.path === "/v1/payment_intents" && r.idempotencyKey === `payment:${report.paymentId}:create`,
  );
  assert.equal(creates.length, 1);

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
  assert.ok(
    report.validation.fields.some((f) => f.startsWith("body.items.0.quantity")),
    report.validation.fields.join(),
  );
  assert.deepEqual(report.afterLogout, { status: 401, code: "invalid_refresh_token" });
}
