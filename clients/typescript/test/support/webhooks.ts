/** Stripe's webhooks, signed exactly as Stripe signs them, delivered to the API. */
import { createHmac } from "node:crypto";

import { stripeId } from "./stripe-standin.js";

type Json = Record<string, unknown>;

export function stripeEvent(type: string, object: Json, account?: string): Json {
  const event: Json = {
    id: stripeId("evt"),
    object: "event",
    api_version: "2026-10-28.endive",
    created: Math.floor(Date.now() / 1000),
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  };
  if (account !== undefined) event.account = account;
  return event;
}

/** `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the secret>`. */
export function signature(payload: string, secret: string, timestamp = Math.floor(Date.now() / 1000)): string {
  const digest = createHmac("sha256", secret).update(`${timestamp}.${payload}`).digest("hex");
  return `t=${timestamp},v1=${digest}`;
}

export async function deliver(apiUrl: string, secret: string, event: Json): Promise<void> {
  const payload = JSON.stringify(event);
  const response = await fetch(`${apiUrl}/webhooks/stripe`, {
    method: "POST",
    body: payload,
    headers: { "Content-Type": "application/json", "Stripe-Signature": signature(payload, secret) },
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`webhook ${String(event.type)} answered ${response.status}: ${text}`);
  const status = (JSON.parse(text) as { status?: string }).status;
  if (status !== "processed") throw new Error(`webhook ${String(event.type)} was ${status}: ${text}`);
}
