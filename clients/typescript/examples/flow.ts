/**
 * The marketplace story an SPA tells, through the typed client: a vendor onboards and lists an
 * item; a buyer registers, logs in, refreshes, browses, checks out with an Idempotency-Key
 * (a retry is recognised as replayed), watches the order turn `paid` on the event stream, and
 * logs out. Run by the Node smoke test and, unchanged, by the page of the browser test.
 *
 * Stripe's side (the vendor finishing onboarding, the buyer's card being charged) happens outside
 * the SPA: `harness` plays it, by sending the signed webhooks Stripe would send.
 */
import {
  ApiError,
  createMarketplaceClient,
  dataOf,
  isReplayed,
  newIdempotencyKey,
  type MarketplaceClient,
  type OrderEvent,
  type RefreshMode,
} from "../src/index.js";

export interface FlowHarness {
  /** Stripe tells the API that the vendor's connected account can take payments. */
  completeOnboarding(stripeAccountId: string): Promise<void>;
  /** Stripe tells the API that the buyer paid the PaymentIntent. */
  payPaymentIntent(paymentIntentId: string): Promise<void>;
}

export interface FlowOptions {
  baseUrl: string;
  refreshMode?: RefreshMode;
  harness: FlowHarness;
  /** Makes e-mails unique across runs against one database. */
  runId?: string;
  timeoutMs?: number;
  /** Called as each step starts (progress output). */
  onStep?: (step: string) => void;
}

export interface FlowReport {
  vendorCanSell: boolean;
  storefrontHasListing: boolean;
  meEmail: string;
  /** The X-Request-ID the client sent came back on the answer. */
  requestIdEchoed: boolean;
  refreshGaveNewAccessToken: boolean;
  /** Two calls with an expired access token: both succeed after exactly one refresh. */
  refreshesForTwoExpiredCalls: number;
  paymentId: string;
  firstReplayed: boolean;
  replayReplayed: boolean;
  replaySamePayment: boolean;
  streamStatuses: string[];
  /** Reconnecting with the first event's id replays what came after it. */
  resumedStatuses: string[];
  notFound: { status: number; code: string; requestId: string | undefined };
  validation: { status: number; code: string; fields: string[] };
  afterLogout: { status: number; code: string };
}

const PASSWORD = "correct-horse-battery";

async function problemOf(call: Promise<unknown>): Promise<ApiError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error("expected the API to refuse this call");
}

async function signUp(
  options: FlowOptions,
  role: "buyer" | "vendor",
  email: string,
): Promise<MarketplaceClient> {
  const client = createMarketplaceClient({
    baseUrl: options.baseUrl,
    refreshMode: options.refreshMode ?? "body",
  });
  await client.register({ email, password: PASSWORD, role, full_name: null });
  await client.login(email, PASSWORD);
  return client;
}

export async function runFlow(options: FlowOptions): Promise<FlowReport> {
  const run = options.runId ?? newIdempotencyKey().slice(0, 8);
  const mode = options.refreshMode ?? "body";
  const signal = AbortSignal.timeout(options.timeoutMs ?? 30_000);
  const step = options.onStep ?? ((): void => undefined);

  // --- the vendor: profile, Stripe onboarding, a listing ------------------------------------
  step("vendor");
  const vendor = await signUp(options, "vendor", `vendor-${run}@example.com`);
  await vendor.api.PUT("/v1/vendor/profile", {
    body: { display_name: `Shop ${run}`, description: null, country: "US", default_currency: "usd" },
  });
  const setup = dataOf(await vendor.api.POST("/v1/vendor/payments/setup"));
  await options.harness.completeOnboarding(setup.stripe_account_id);
  const profile = dataOf(await vendor.api.GET("/v1/vendor/profile"));
  const listing = dataOf(
    await vendor.api.POST("/v1/vendor/listings", {
      body: {
        title: `Teapot ${run}`,
        description: null,
        price_amount: 2500,
        currency: "usd",
        stock_quantity: 3,
        status: "active",
      },
    }),
  );

  // --- the buyer: log in, refresh, storefront -----------------------------------------------
  step("buyer");
  const buyerEmail = `buyer-${run}@example.com`;
  const first = await signUp(options, "buyer", buyerEmail);
  const before = first.session?.accessToken;
  const refreshed = await first.refresh();
  // The access token expires (here: replaced by a stale one) while two calls are in flight:
  // the client refreshes once for both and retries each. In cookie mode the cookie does it.
  let refreshes = 0;
  const buyer = createMarketplaceClient({
    baseUrl: options.baseUrl,
    refreshMode: mode,
    session: { ...refreshed, accessToken: "stale.access.token" },
    onSession: (session) => {
      if (session) refreshes += 1;
    },
  });
  // A request id of our own, to find this call in the API's logs (sent and read back cross-origin).
  const requestId = newIdempotencyKey().replaceAll("-", "");
  const [meResult] = await Promise.all([
    buyer.api.GET("/v1/auth/me", { headers: { "X-Request-ID": requestId } }),
    buyer.api.GET("/v1/buyer/orders").then(dataOf),
  ]);
  const me = dataOf(meResult);
  const storefront = dataOf(
    await buyer.api.GET("/v1/platform/listings", { params: { query: { vendor_id: profile.id } } }),
  );

  // --- checkout with an Idempotency-Key, then the same request again ----------------------
  step("checkout");
  const key = newIdempotencyKey();
  const cart = { items: [{ listing_id: listing.id, quantity: 1 }], shipping: null, contact: null };
  const placed = await buyer.api.POST("/v1/buyer/orders", {
    body: cart,
    params: { header: { "Idempotency-Key": key } },
  });
  const replay = await buyer.api.POST("/v1/buyer/orders", {
    body: cart,
    params: { header: { "Idempotency-Key": key } },
  });
  const checkout = dataOf(placed);
  const order = checkout.orders[0];
  if (order === undefined || !checkout.client_secret) throw new Error("checkout without an order");
  const paymentIntentId = checkout.client_secret.split("_secret_")[0] ?? "";

  // --- the order stream: current state, then `paid` once Stripe's webhook arrived -----------
  step("stream");
  const statuses: string[] = [];
  let firstEvent: OrderEvent | undefined;
  for await (const event of buyer.orderEvents(order.id, { signal })) {
    statuses.push(event.data.status);
    if (firstEvent === undefined) {
      firstEvent = event;
      step("pay");
      await options.harness.payPaymentIntent(paymentIntentId);
      step("paid webhook delivered");
    }
    if (event.data.status === "paid") break;
  }
  step("resume");
  const resumed: string[] = [];
  for await (const event of buyer.orderEvents(order.id, {
    lastEventId: firstEvent?.id,
    signal,
    reconnect: false,
  })) {
    resumed.push(event.data.status);
    if (event.data.status === "paid") break;
  }

  // --- errors are typed: a stable code, field errors, the request id ------------------------
  step("errors");
  const missing = await problemOf(
    buyer.api.GET("/v1/buyer/orders/{order_id}", {
      params: { path: { order_id: "00000000-0000-4000-8000-000000000000" } },
    }),
  );
  const invalid = await problemOf(
    buyer.api.POST("/v1/buyer/orders", {
      body: { items: [{ listing_id: listing.id, quantity: 0 }], shipping: null, contact: null },
    }),
  );

  // --- log out: the refresh token (body or cookie) no longer works ---------------------------
  step("logout");
  const last = buyer.session;
  await buyer.logout();
  const stale = createMarketplaceClient({ baseUrl: options.baseUrl, refreshMode: mode, session: last });
  const afterLogout = await problemOf(stale.refresh());
  step("done");

  return {
    vendorCanSell: profile.can_accept_payments,
    storefrontHasListing: storefront.items.some((item) => item.id === listing.id),
    meEmail: me.email,
    requestIdEchoed: meResult.response.headers.get("X-Request-ID") === requestId,
    refreshGaveNewAccessToken: refreshed.accessToken !== before,
    refreshesForTwoExpiredCalls: refreshes,
    paymentId: checkout.payment_id,
    firstReplayed: isReplayed(placed.response),
    replayReplayed: isReplayed(replay.response),
    replaySamePayment: dataOf(replay).payment_id === checkout.payment_id,
    streamStatuses: statuses,
    resumedStatuses: resumed,
    notFound: { status: missing.status, code: missing.code, requestId: missing.requestId },
    validation: {
      status: invalid.status,
      code: invalid.code,
      fields: invalid.errors.map((e) => e.loc.join(".")),
    },
    afterLogout: { status: afterLogout.status, code: afterLogout.code },
  };
}
