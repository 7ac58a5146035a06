/**
 * The SPA in a real browser: a plain page on a second origin (http://localhost:<port>) runs the
 * example flow in headless Chromium (Debian's, driven by playwright-core; no browser download)
 * against live API servers on 127.0.0.1 — JSON-body refresh tokens, and the HttpOnly cookie mode
 * — and the same page served from an origin the API does not allow is blocked by CORS.
 */
import assert from "node:assert/strict";
import type { Server } from "node:http";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { type Browser, chromium } from "playwright-core";

import type { FlowReport } from "../examples/flow.js";
import type { RefreshMode } from "../src/index.js";
import { assertFlowReport } from "./support/report.js";
import { type Stack, freePort, startStack } from "./support/stack.js";
import { serveStatic } from "./support/static.js";

const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// The flags a closed network needs (no update, sync, QUIC or first-run calls to hang on).
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

type PageResult =
  | { ok: true; report: FlowReport }
  | { ok: false; name: string; code?: string; message: string };

let stack: Stack;
let browser: Browser;
let allowedOrigin: string;
let foreignOrigin: string;
const pages: Server[] = [];

before(async () => {
  const [allowedPort, foreignPort] = [await freePort(), await freePort()];
  allowedOrigin = `http://localhost:${allowedPort}`;
  foreignOrigin = `http://localhost:${foreignPort}`;
  stack = await startStack({ modes: ["body", "cookie"], corsOrigins: [allowedOrigin] });
  pages.push(await serveStatic(PACKAGE, allowedPort), await serveStatic(PACKAGE, foreignPort));
  // playwright-core gives the browser a fresh temporary profile (user data dir) of its own.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
});

after(async () => {
  await browser?.close();
  await Promise.all(pages.map((page) => new Promise((done) => page.close(done))));
  await stack?.close();
});

async function runInPage(origin: string, apiUrl: string, mode: RefreshMode): Promise<PageResult> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.exposeFunction("harnessCompleteOnboarding", (api: string, id: string) =>
      stack.harness(api).completeOnboarding(id),
    );
    await page.exposeFunction("harnessPayPaymentIntent", (api: string, id: string) =>
      stack.harness(api).payPaymentIntent(id),
    );
    await page.goto(`${origin}/index.html`);
    await page.waitForFunction(() => document.title === "ready");
    return (await page.evaluate(
      ([url, refreshMode]) =>
        (window as unknown as { runFlowFromPage(u: string, m: string): Promise<unknown> }).runFlowFromPage(
          url,
          refreshMode,
        ),
      [apiUrl, mode] as const,
    )) as PageResult;
  } finally {
    await context.close();
  }
}

function report(result: PageResult): FlowReport {
  assert.ok(result.ok, `the page's flow failed: ${JSON.stringify(result)}`);
  return result.report;
}

test("a page on an allowed origin runs the flow with JSON-body refresh tokens", { timeout: 120_000 }, async () => {
  const api = stack.urls.body ?? "";
  assert.match(api, /^http:\/\/127\.0\.0\.1:\d+$/);
  assertFlowReport(report(await runInPage(allowedOrigin, api, "body")), stack.stripe);
});

test("a page on an allowed origin runs the flow with the HttpOnly refresh cookie", { timeout: 120_000 }, async () => {
  // SameSite=Strict: the API must be on the page's site, as app. and api.example.com would be.
  const api = stack.urls.cookie?.replace("127.0.0.1", "localhost");
  assert.ok(api);
  assertFlowReport(report(await runInPage(allowedOrigin, api, "cookie")), stack.stripe);
});

test("a page on an origin the API does not allow is blocked", { timeout: 60_000 }, async () => {
  const api = stack.urls.body;
  assert.ok(api);
  const result = await runInPage(foreignOrigin, api, "body");
  assert.equal(result.ok, false);
  assert.ok(!result.ok);
  // A CORS refusal reaches the page as a network error, never as an answer it could read.
  assert.equal(result.name, "TypeError");
  assert.equal(result.code, undefined);
});
