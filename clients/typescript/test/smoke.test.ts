/**
 * The example flow against a live server (JSON-body refresh tokens): register, log in, refresh,
 * storefront, checkout with an Idempotency-Key and its replay, `paid` over the order stream after
 * a signed webhook, typed errors, logout.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { runFlow } from "../examples/flow.js";
import { assertFlowReport } from "./support/report.js";
import { type Stack, startStack } from "./support/stack.js";

let stack: Stack;

before(async () => {
  stack = await startStack({ modes: ["body"], corsOrigins: ["http://localhost:5173"] });
});

after(async () => {
  await stack?.close();
});

test("the example flow runs against a live server", { timeout: 120_000 }, async (t) => {
  const baseUrl = Object.values(stack.urls)[0];
  assert.ok(baseUrl);
  const started = Date.now();
  const report = await runFlow({
    baseUrl,
    harness: stack.harness(baseUrl),
    onStep: (step) => t.diagnostic(`${Date.now() - started} ms: ${step}`),
  });
  assertFlowReport(report, stack.stripe);
});
