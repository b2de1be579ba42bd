/** The API's error bodies as typed errors with messages a person can act on. */

export type ErrorDetail = { loc?: (string | number)[]; msg?: string; type?: string };

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  /** Seconds to wait before trying again (from `Retry-After` or `details.retry_after`). */
  readonly retryAfter: number | null;

  constructor(status: number, code: string, message: string, details: unknown = null, retryAfter: number | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

/** Codes a request that never reached the API (offline, DNS, CORS) is reported under. */
export const NETWORK_ERROR = "network_error";

const MESSAGES: Record<string, string> = {
  unauthorized: "Your session has ended. Please sign in again.",
  token_expired: "Your session has expired. Please sign in again.",
  invalid_credentials: "Wrong email or password.",
  account_locked: "This account is locked after too many failed sign-ins. Try again later.",
  email_taken: "An account with this email already exists.",
  csrf_failed: "Your session is out of date. Reload the page and try again.",
  forbidden: "You do not have permission to do this.",
  not_found: "Not found — it may have been deleted.",
  conflict: "This conflicts with the current state. Reload and try again.",
  insufficient_balance: "Your balance does not cover this. Top up on the Billing page.",
  too_large: "The file is too large.",
  unsupported_type: "This file type is not supported. Use txt, md, html, pdf or docx.",
  invalid_bot_token: "Telegram did not accept this bot token.",
  model_not_available: "This assistant's model is no longer available. Choose another model.",
  unavailable: "A service is temporarily unavailable. Nothing was changed; try again shortly.",
  internal_error: "Something went wrong on the server. Try again.",
  bad_request: "The request was not understood.",
  [NETWORK_ERROR]: "Cannot reach the server. Check your connection; nothing you typed was lost.",
};

function validationMessage(details: unknown): string | null {
  if (!Array.isArray(details) || details.length === 0) return null;
  const parts = (details as ErrorDetail[]).map((d) => {
    const field = (d.loc ?? []).filter((p) => p !== "body").join(".");
    return field ? `${field}: ${d.msg ?? "invalid"}` : (d.msg ?? "invalid");
  });
  return parts.join("; ");
}

/** What to show a person for an error thrown by the API client (or anything else). */
export function readableMessage(error: unknown): string {
  if (!(error instanceof ApiError)) {
    return error instanceof Error && error.message ? error.message : "Something went wrong.";
  }
  if (error.code === "rate_limited") {
    return error.retryAfter
      ? `Too many requests. Try again in ${Math.ceil(error.retryAfter)} s.`
      : "Too many requests. Try again shortly.";
  }
  if (error.code === "validation_error" || error.status === 422) {
    const specific = validationMessage(error.details);
    if (error.code === "validation_error") return specific ?? error.message ?? "Check the highlighted fields.";
    return MESSAGES[error.code] ?? specific ?? error.message;
  }
  if (error.code === "unauthorized" && error.message && error.status === 401 && /password|credential/i.test(error.message)) {
    return MESSAGES.invalid_credentials;
  }
  return MESSAGES[error.code] ?? error.message ?? "Something went wrong.";
}

function parseRetryAfter(header: string | null, details: unknown): number | null {
  if (header) {
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return Math.max(0, seconds);
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, (date - Date.now()) / 1000);
  }
  if (details && typeof details === "object" && "retry_after" in details) {
    const value = Number((details as { retry_after: unknown }).retry_after);
    if (Number.isFinite(value)) return value;
  }
  return null;
}

/** Turns a failed response into an ApiError, whatever its body is. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  let details: unknown = null;
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string; details?: unknown } };
    if (body?.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      details = body.error.details ?? null;
    }
  } catch {
    // Not JSON (a proxy's error page): keep the status-derived code.
  }
  if (code.startsWith("http_")) {
    if (response.status === 429) code = "rate_limited";
    else if (response.status === 503 || response.status === 502 || response.status === 504) code = "unavailable";
    else if (response.status >= 500) code = "internal_error";
  }
  return new ApiError(response.status, code, message, details, parseRetryAfter(response.headers.get("Retry-After"), details));
}
