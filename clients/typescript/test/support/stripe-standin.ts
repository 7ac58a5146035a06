/**
 * A small stateful Stripe stand-in for the tests: the few endpoints the flow reaches (connected
 * accounts, account links, PaymentIntents), Stripe-shaped JSON, answers replayed per
 * Idempotency-Key as Stripe does. It also builds the events Stripe would send about its objects.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

type Json = Record<string, unknown>;

export function stripeId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString("hex")}`;
}

const now = (): number => Math.floor(Date.now() / 1000);

/** `metadata[payment_id]=x&capabilities[transfers][requested]=true` → nested objects. */
export function parseForm(body: string): Json {
  const out: Json = {};
  for (const [key, value] of new URLSearchParams(body)) {
    const parts = key.split(/\[|\]\[|\]/).filter((part) => part !== "");
    let node: Json = out;
    parts.forEach((part, index) => {
      if (index === parts.length - 1) node[part] = value;
      else node = (node[part] ??= {}) as Json;
    });
  }
  return out;
}

export class StripeStandIn {
  readonly accounts = new Map<string, Json>();
  readonly intents = new Map<string, Json>();
  readonly requests: { method: string; path: string; idempotencyKey: string | undefined }[] = [];
  private readonly replay = new Map<string, string>();
  private server: Server | undefined;

  async start(port = 0): Promise<number> {
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        response.writeHead(500).end(String(error));
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(port, "127.0.0.1", resolve));
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server?.closeAllConnections();
      this.server?.close(() => resolve());
    });
  }

  /** The account as Stripe shows it once onboarding is complete. */
  activateAccount(accountId: string): Json {
    const account = this.accounts.get(accountId);
    if (account === undefined) throw new Error(`no account ${accountId} at the stand-in`);
    Object.assign(account, {
      charges_enabled: true,
      payouts_enabled: true,
      details_submitted: true,
      capabilities: { card_payments: "active", transfers: "active" },
      requirements: requirements(null, []),
    });
    return account;
  }

  /** The PaymentIntent as Stripe shows it once the buyer's card was charged. */
  succeedIntent(intentId: string): Json {
    const intent = this.intents.get(intentId);
    if (intent === undefined) throw new Error(`no PaymentIntent ${intentId} at the stand-in`);
    Object.assign(intent, {
      status: "succeeded",
      amount_received: intent.amount,
      latest_charge: stripeId("ch"),
    });
    return intent;
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    const method = request.method ?? "GET";
    const path = new URL(request.url ?? "/", "http://stand-in").pathname;
    const key = request.headers["idempotency-key"];
    const idempotencyKey = typeof key === "string" ? key : undefined;
    this.requests.push({ method, path, idempotencyKey });
    const replayKey = idempotencyKey === undefined ? undefined : `${method} ${path} ${idempotencyKey}`;
    let status = 200;
    let payload = replayKey === undefined ? undefined : this.replay.get(replayKey);
    if (payload === undefined) {
      const result = this.route(method, path, parseForm(body));
      status = result === undefined ? 404 : 200;
      payload = JSON.stringify(
        result ?? { error: { type: "invalid_request_error", message: `No such route: ${path}` } },
      );
      if (replayKey !== undefined && status === 200) this.replay.set(replayKey, payload);
    }
    response.writeHead(status, { "Content-Type": "application/json", "Request-Id": stripeId("req") });
    response.end(payload);
  }

  private route(method: string, path: string, params: Json): Json | undefined {
    const [, version, resource, id, action] = path.split("/");
    if (version !== "v1") return undefined;
    if (resource === "accounts") {
      if (method === "POST" && id === undefined) return this.createAccount(params);
      if (method === "GET" && id !== undefined) return this.accounts.get(id);
    }
    if (resource === "account_links" && method === "POST") {
      return {
        object: "account_link",
        created: now(),
        expires_at: now() + 300,
        url: `https://connect.stripe.test/setup/${String(params.account)}`,
      };
    }
    if (resource === "payment_intents") {
      if (method === "POST" && id === undefined) return this.createIntent(params);
      const intent = id === undefined ? undefined : this.intents.get(id);
      if (method === "GET") return intent;
      if (method === "POST" && action === "cancel" && intent !== undefined) {
        return Object.assign(intent, { status: "canceled", canceled_at: now() });
      }
    }
    return undefined;
  }

  private createAccount(params: Json): Json {
    const account: Json = {
      id: stripeId("acct"),
      object: "account",
      business_profile: params.business_profile ?? {},
      capabilities: { card_payments: "inactive", transfers: "inactive" },
      charges_enabled: false,
      payouts_enabled: false,
      details_submitted: false,
      controller: { type: "application", is_controller: true, ...(params.controller as Json) },
      country: params.country ?? "US",
      default_currency: "usd",
      email: params.email ?? null,
      metadata: params.metadata ?? {},
      requirements: requirements("requirements.past_due", ["external_account", "tos_acceptance.date"]),
      settings: { payouts: { schedule: { delay_days: 2, interval: "daily" } } },
      created: now(),
    };
    this.accounts.set(String(account.id), account);
    return account;
  }

  private createIntent(params: Json): Json {
    const id = stripeId("pi");
    const intent: Json = {
      id,
      object: "payment_intent",
      amount: Number(params.amount),
      amount_received: 0,
      currency: params.currency,
      status: "requires_payment_method",
      client_secret: `${id}_secret_${randomBytes(8).toString("hex")}`,
      metadata: params.metadata ?? {},
      application_fee_amount:
        params.application_fee_amount === undefined ? null : Number(params.application_fee_amount),
      transfer_data: params.transfer_data ?? null,
      transfer_group: params.transfer_group ?? null,
      on_behalf_of: params.on_behalf_of ?? null,
      latest_charge: null,
      last_payment_error: null,
      livemode: false,
      created: now(),
    };
    this.intents.set(id, intent);
    return intent;
  }
}

function requirements(disabledReason: string | null, due: string[]): Json {
  return {
    alternatives: [],
    current_deadline: null,
    currently_due: due,
    disabled_reason: disabledReason,
    errors: [],
    eventually_due: due,
    past_due: due,
    pending_verification: [],
  };
}
