import { afterEach, describe, expect, it, vi } from "vitest";
import { api, currentAccessToken, refreshSession, setApiDeps } from "./api";
import { ApiError, NETWORK_ERROR } from "./errors";

type Call = { url: string; init: RequestInit };

function respond(status: number, body: unknown = null, headers: Record<string, string> = {}): Response {
  if (status === 204) return new Response(null, { status });
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

function fakeFetch(...responses: (Response | Error)[]) {
  const calls: Call[] = [];
  const fetch = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    const next = responses.shift();
    if (!next) throw new Error("no more responses");
    if (next instanceof Error) throw next;
    return next;
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, calls };
}

const PAIR = { access_token: "new-access", refresh_token: "new-refresh", token_type: "bearer", expires_in: 900 };

afterEach(() => setApiDeps(null));

describe("api", () => {
  it("sends cookies same-origin and echoes the CSRF cookie on a state change only", async () => {
    const { fetch, calls } = fakeFetch(respond(200, { ok: 1 }), respond(201, { id: "a" }));
    setApiDeps({ fetch, cookie: () => "other=1; csrf_token=abc%3D" });
    await api("/api/assistants");
    await api("/api/assistants", { method: "POST", body: { name: "x" } });
    expect(calls[0].init.credentials).toBe("same-origin");
    expect((calls[0].init.headers as Record<string, string>)["X-CSRF-Token"]).toBeUndefined();
    const postHeaders = calls[1].init.headers as Record<string, string>;
    expect(postHeaders["X-CSRF-Token"]).toBe("abc=");
    expect(postHeaders["Content-Type"]).toBe("application/json");
    expect(calls[1].init.body).toBe('{"name":"x"}');
  });

  it("throws a typed error carrying the API's code", async () => {
    const { fetch } = fakeFetch(respond(404, { error: { code: "not_found", message: "no such assistant" } }));
    setApiDeps({ fetch });
    const error = (await api("/api/assistants/x").catch((e: unknown) => e)) as ApiError;
    expect(error).toBeInstanceOf(ApiError);
    expect(error.code).toBe("not_found");
    expect(error.status).toBe(404);
  });

  it("refreshes the session once on token_expired and repeats the request", async () => {
    const { fetch, calls } = fakeFetch(
      respond(401, { error: { code: "token_expired", message: "expired" } }),
      respond(200, PAIR),
      respond(200, { id: "me" }),
    );
    setApiDeps({ fetch, cookie: () => "csrf_token=t" });
    await expect(api("/api/users/me")).resolves.toEqual({ id: "me" });
    expect(calls.map((c) => c.url)).toEqual(["/api/users/me", "/api/auth/refresh", "/api/users/me"]);
    expect((calls[1].init.headers as Record<string, string>)["X-CSRF-Token"]).toBe("t");
    // The refreshed token is kept for the WebSocket without another request.
    await expect(currentAccessToken()).resolves.toBe("new-access");
    expect(calls).toHaveLength(3);
  });

  it("does not refresh on a plain 401 (a revoked or missing session)", async () => {
    const { fetch, calls } = fakeFetch(respond(401, { error: { code: "unauthorized", message: "no" } }));
    setApiDeps({ fetch });
    await expect(api("/api/users/me")).rejects.toMatchObject({ code: "unauthorized" });
    expect(calls).toHaveLength(1);
  });

  it("shares one refresh between concurrent callers (refresh tokens rotate)", async () => {
    const { fetch, calls } = fakeFetch(respond(200, PAIR));
    setApiDeps({ fetch });
    const [a, b] = await Promise.all([refreshSession(), refreshSession()]);
    expect(a).toEqual(b);
    expect(calls).toHaveLength(1);
  });

  it("waits out a short Retry-After on a read and retries once", async () => {
    const sleep = vi.fn(async () => {});
    const { fetch, calls } = fakeFetch(
      respond(429, { error: { code: "rate_limited", message: "slow" } }, { "Retry-After": "2" }),
      respond(200, { items: [] }),
    );
    setApiDeps({ fetch, sleep });
    await expect(api("/api/dialogs")).resolves.toEqual({ items: [] });
    expect(sleep).toHaveBeenCalledWith(2000);
    expect(calls).toHaveLength(2);
  });

  it("never repeats a write on 429 and reports the wait instead", async () => {
    const sleep = vi.fn(async () => {});
    const { fetch, calls } = fakeFetch(
      respond(429, { error: { code: "rate_limited", message: "slow" } }, { "Retry-After": "1" }),
    );
    setApiDeps({ fetch, sleep });
    await expect(api("/api/dialogs/d/messages", { method: "POST", body: { content: "hi" } })).rejects.toMatchObject({
      code: "rate_limited",
      retryAfter: 1,
    });
    expect(sleep).not.toHaveBeenCalled();
    expect(calls).toHaveLength(1);
  });

  it("reports an unreachable server as a network error", async () => {
    const { fetch } = fakeFetch(new TypeError("Failed to fetch"));
    setApiDeps({ fetch });
    await expect(api("/api/balance")).rejects.toMatchObject({ code: NETWORK_ERROR, status: 0 });
  });

  it("returns nothing for 204 and builds query strings without empty values", async () => {
    const { fetch, calls } = fakeFetch(respond(204));
    setApiDeps({ fetch });
    await expect(api("/api/x", { method: "DELETE", query: { a: 1, b: "", c: null, d: "x y" } })).resolves.toBeUndefined();
    expect(calls[0].url).toBe("/api/x?a=1&d=x+y");
  });
});
