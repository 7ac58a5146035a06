import type { components } from "./openapi.js";

export type Problem = components["schemas"]["Problem"];
export type FieldError = components["schemas"]["FieldError"];

/**
 * Every non-2xx answer of the API, from its `application/problem+json` body.
 *
 * `code` is the stable machine-readable error code (`out_of_stock`, `idempotency_key_reused`,
 * `invalid_refresh_token`, …); `title` and `detail` are for people; `requestId` is the
 * `X-Request-ID` to quote to support.
 */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly detail: string | undefined;
  /** Field errors of a 422 (`validation_error`), else empty. */
  readonly errors: FieldError[];
  readonly requestId: string | undefined;
  /** Seconds from `Retry-After`, when the API sent one (429, 503, 409 key in use). */
  readonly retryAfter: number | undefined;
  readonly problem: Problem | undefined;

  constructor(status: number, problem: Problem | undefined, headers: Headers) {
    const code = problem?.code ?? `http_${status}`;
    const title = problem?.title ?? `HTTP ${status}`;
    super(`${status} ${code}: ${problem?.detail ?? title}`);
    this.status = status;
    this.code = code;
    this.title = title;
    this.detail = problem?.detail ?? undefined;
    this.errors = problem?.errors ?? [];
    this.requestId = headers.get("X-Request-ID") ?? undefined;
    const retryAfter = Number.parseInt(headers.get("Retry-After") ?? "", 10);
    this.retryAfter = Number.isFinite(retryAfter) ? retryAfter : undefined;
    this.problem = problem;
  }

  /** Reads the body of `response` (not a clone): call it once per response. */
  static async fromResponse(response: Response): Promise<ApiError> {
    let problem: Problem | undefined;
    try {
      const body: unknown = await response.json();
      if (isProblem(body)) problem = body;
    } catch {
      // Not JSON (a proxy's HTML page, an empty body): status and headers are all there is.
    }
    return new ApiError(response.status, problem, response.headers);
  }
}

function isProblem(value: unknown): value is Problem {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  return typeof record.code === "string" && typeof record.status === "number";
}
