/**
 * A live marketplace-api for the tests: `marketplace-api serve` on free loopback ports (one server
 * per refresh-token mode), on a fresh database — a new one on TEST_DATABASE_URL's server (CI), else
 * an embedded PostgreSQL in a temporary folder — with Stripe answered by `StripeStandIn`.
 *
 * With MARKETPLACE_API_URL set, that server is used instead: run it with
 * STRIPE_API_BASE=http://127.0.0.1:$MARKETPLACE_STRIPE_PORT and
 * STRIPE_WEBHOOK_SECRETS=$MARKETPLACE_WEBHOOK_SECRET; the tests start the stand-in on that port.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import type { FlowHarness } from "../../examples/flow.js";
import type { RefreshMode } from "../../src/index.js";
import { StripeStandIn } from "./stripe-standin.js";
import { deliver, stripeEvent } from "./webhooks.js";

/** The repository's root: the nearest folder above this file holding pyproject.toml. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "pyproject.toml"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("marketplace-api checkout not found above the client");
    dir = parent;
  }
  return dir;
}

export interface StackOptions {
  modes: RefreshMode[];
  corsOrigins: string[];
  /** REFRESH_COOKIE_SECURE (default true). */
  cookieSecure?: boolean;
}

export interface Stack {
  urls: Partial<Record<RefreshMode, string>>;
  stripe: StripeStandIn;
  webhookSecret: string;
  harness(apiUrl: string): FlowHarness;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function makeHarness(stripe: StripeStandIn, secret: string) {
  return (apiUrl: string): FlowHarness => ({
    async completeOnboarding(accountId) {
      await deliver(apiUrl, secret, stripeEvent("account.updated", stripe.activateAccount(accountId), accountId));
    },
    async payPaymentIntent(intentId) {
      await deliver(apiUrl, secret, stripeEvent("payment_intent.succeeded", stripe.succeedIntent(intentId)));
    },
  });
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const external = process.env.MARKETPLACE_API_URL;
  if (external) {
    const secret = process.env.MARKETPLACE_WEBHOOK_SECRET;
    const port = Number(process.env.MARKETPLACE_STRIPE_PORT);
    if (!secret || !port) {
      throw new Error("MARKETPLACE_API_URL needs MARKETPLACE_WEBHOOK_SECRET and MARKETPLACE_STRIPE_PORT");
    }
    const stripe = new StripeStandIn();
    await stripe.start(port);
    return {
      urls: { body: external.replace(/\/+$/, "") }, // Node has no cookie jar: body mode only
      stripe,
      webhookSecret: secret,
      harness: makeHarness(stripe, secret),
      close: () => stripe.close(),
    };
  }

  const bin = process.env.MARKETPLACE_API_BIN ?? join(repoRoot(), ".venv", "bin", "marketplace-api");
  const python = join(dirname(bin), "python");
  const workdir = await mkdtemp(join(tmpdir(), "marketplace-ts-")); // no stray .env is read here
  const secret = `whsec_${randomBytes(16).toString("hex")}`;
  const stripe = new StripeStandIn();
  const stripePort = await stripe.start();
  const children: ChildProcess[] = [];
  const database = await freshDatabase(python, workdir);
  const urls: Partial<Record<RefreshMode, string>> = {};
  const close = async (): Promise<void> => {
    await Promise.all(children.map(stop));
    await stripe.close();
    await database.drop();
    await rm(workdir, { recursive: true, force: true });
  };
  try {
    for (const [index, mode] of options.modes.entries()) {
      const port = await freePort();
      const env: Record<string, string> = {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: process.env.HOME ?? workdir,
        ...database.env,
        ENVIRONMENT: "test",
        STRIPE_SECRET_KEY: "sk_test_typescript_client",
        STRIPE_PUBLISHABLE_KEY: "pk_test_typescript_client",
        STRIPE_API_BASE: `http://127.0.0.1:${stripePort}`,
        STRIPE_MAX_NETWORK_RETRIES: "0",
        STRIPE_WEBHOOK_SECRETS: secret,
        JWT_SECRET: randomBytes(32).toString("hex"),
        CORS_ORIGINS: options.corsOrigins.join(","),
        FRONTEND_URL: options.corsOrigins[0] ?? "http://localhost:5173",
        RATE_LIMIT_REGISTER: "1000/minute",
        RATE_LIMIT_LOGIN: "1000/minute",
        LOG_LEVEL: "WARNING",
        // A stream whose client left ends at its next heartbeat: short, so servers stop quickly.
        SSE_HEARTBEAT_SECONDS: "1",
        REFRESH_TOKEN_COOKIE: String(mode === "cookie"),
        REFRESH_COOKIE_SECURE: String(options.cookieSecure ?? true),
      };
      const args = ["serve", "--host", "127.0.0.1", "--port", String(port), "--no-worker"];
      if (index > 0) args.push("--no-migrate"); // the first server migrated the fresh database
      const child = spawn(bin, args, { cwd: workdir, env, stdio: ["ignore", "pipe", "pipe"] });
      children.push(child);
      const url = `http://127.0.0.1:${port}`;
      await waitHealthy(url, child);
      urls[mode] = url;
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { urls, stripe, webhookSecret: secret, harness: makeHarness(stripe, secret), close };
}

interface Database {
  env: Record<string, string>;
  drop(): Promise<void>;
}

const run = promisify(execFile);
const ADMIN_SCRIPT = `
import asyncio, sys, asyncpg
async def main(url, action, name):
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if action == "create":
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
asyncio.run(main(*sys.argv[1:]))
`;

/** A new database on TEST_DATABASE_URL's server, dropped afterwards; else an embedded server. */
async function freshDatabase(python: string, workdir: string): Promise<Database> {
  const base = process.env.TEST_DATABASE_URL;
  if (!base) {
    // The embedded PostgreSQL (pgserver) of a fresh folder: it stops with the last API process.
    return { env: { EMBEDDED_DB_DIR: join(workdir, "pgdata") }, drop: async () => undefined };
  }
  const url = new URL(base.replace(/^postgresql\+asyncpg:/, "postgresql:"));
  const name = `${url.pathname.slice(1) || "marketplace"}_ts_${process.pid}`;
  const admin = new URL(url);
  admin.pathname = "/postgres";
  await run(python, ["-c", ADMIN_SCRIPT, admin.toString(), "create", name]);
  const target = new URL(url);
  target.pathname = `/${name}`;
  return {
    env: { DATABASE_URL: target.toString().replace(/^postgresql:/, "postgresql+asyncpg:") },
    drop: async () => {
      await run(python, ["-c", ADMIN_SCRIPT, admin.toString(), "drop", name]);
    },
  };
}

async function waitHealthy(url: string, child: ChildProcess): Promise<void> {
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((done) => setTimeout(done, 250));
  }
  throw new Error(`marketplace-api serve did not come up on ${url}:\n${output.slice(-4000)}`);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}
