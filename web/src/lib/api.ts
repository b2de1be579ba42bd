/**
 * The fetch wrapper every page uses: same-origin cookies, the CSRF double-submit header on state
 * changes, one silent refresh on `token_expired`, a short wait on `429` for reads, and typed errors.
 */
import { ApiError, NETWORK_ERROR, errorFromResponse } from "./errors";

export const API_BASE = (process.env.NEXT_PUBLIC_API_BASE ?? "").replace(/\/$/, "");
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
/** A read answered `429` is retried once if the server asks for at most this long a wait. */
export const MAX_AUTOMATIC_RETRY_SECONDS = 5;

export type RequestOptions = {
  method?: string;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as multipart (uploads); takes precedence over `body`. */
  form?: FormData;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  query?: Record<string, string | number | boolean | null | undefined>;
};

type Deps = {
  fetch: typeof fetch;
  sleep: (ms: number) => Promise<void>;
  cookie: () => string;
};

const defaultDeps: Deps = {
  fetch: (...args) => globalThis.fetch(...args),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  cookie: () => (typeof document === "undefined" ? "" : document.cookie),
};
let deps: Deps = defaultDeps;

/** Replaces fetch, sleep and the cookie jar (tests). */
export function setApiDeps(overrides: Partial<Deps> | null): void {
  deps = overrides ? { ...defaultDeps, ...overrides } : defaultDeps;
  accessToken = null;
  refreshing = null;
}

export function readCookie(name: string, cookies: string = deps.cookie()): string | null {
  for (const part of cookies.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

type TokenPair = { access_token: string; refresh_token: string; expires_in: number };
type HeldToken = { value: string; expiresAt: number };

// The access token kept in memory only for the WebSocket's auth frame (REST uses the HttpOnly cookie).
let accessToken: HeldToken | null = null;
let refreshing: Promise<TokenPair> | null = null;

export function rememberTokens(pair: TokenPair): void {
  accessToken = { value: pair.access_token, expiresAt: Date.now() + pair.expires_in * 1000 };
}

export function forgetTokens(): void {
  accessToken = null;
}

/**
 * Rotates the session with the refresh cookie. Concurrent callers share one request: refresh tokens
 * rotate, and presenting an old one twice would revoke the whole session.
 */
export function refreshSession(): Promise<TokenPair> {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const pair = await send<TokenPair>("/api/auth/refresh", { method: "POST" });
        rememberTokens(pair);
        return pair;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

/** An access token for the WebSocket, refreshed when it is missing or about to expire. */
export async function currentAccessToken(): Promise<string> {
  if (accessToken && accessToken.expiresAt - Date.now() > 10_000) return accessToken.value;
  return (await refreshSession()).access_token;
}

export function buildUrl(path: string, query?: RequestOptions["query"]): string {
  let url = `${API_BASE}${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
    }
    const text = params.toString();
    if (text) url += (url.includes("?") ? "&" : "?") + text;
  }
  return url;
}

async function send<T>(path: string, options: RequestOptions): Promise<T> {
  const method = (options.method ?? "GET").toUpperCase();
  const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
  let body: BodyInit | undefined;
  if (options.form) {
    body = options.form;
  } else if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  if (!SAFE_METHODS.has(method)) {
    const csrf = readCookie("csrf_token");
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  let response: Response;
  try {
    response = await deps.fetch(buildUrl(path, options.query), {
      method,
      headers,
      body,
      credentials: "same-origin",
      signal: options.signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, NETWORK_ERROR, "Cannot reach the server", null, null);
  }
  if (!response.ok) throw await errorFromResponse(response);
  if (response.status === 204) return undefined as T;
  const type = response.headers.get("Content-Type") ?? "";
  return (type.includes("json") ? await response.json() : await response.text()) as T;
}

/** Calls the API; see the module comment for what it does on expired sessions and rate limits. */
export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const method = (options.method ?? "GET").toUpperCase();
  try {
    return await send<T>(path, options);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.code === "token_expired" && !path.startsWith("/api/auth/")) {
      await refreshSession();
      return send<T>(path, options);
    }
    if (
      error.code === "rate_limited" &&
      SAFE_METHODS.has(method) &&
      error.retryAfter !== null &&
      error.retryAfter <= MAX_AUTOMATIC_RETRY_SECONDS
    ) {
      await deps.sleep(error.retryAfter * 1000);
      return send<T>(path, options);
    }
    throw error;
  }
}

export type Page<T> = { items: T[]; next_cursor: string | null };
