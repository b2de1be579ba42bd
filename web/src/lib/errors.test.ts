import { describe, expect, it } from "vitest";
import { ApiError, errorFromResponse, readableMessage } from "./errors";

function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

describe("errorFromResponse", () => {
  it("reads code, message and details from the API's error body", async () => {
    const error = await errorFromResponse(
      jsonResponse(409, { error: { code: "email_taken", message: "taken", details: null } }),
    );
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(409);
    expect(error.code).toBe("email_taken");
    expect(error.message).toBe("taken");
  });

  it("takes the wait from Retry-After on a rate limit", async () => {
    const error = await errorFromResponse(
      jsonResponse(429, { error: { code: "rate_limited", message: "slow down" } }, { "Retry-After": "7" }),
    );
    expect(error.retryAfter).toBe(7);
    expect(readableMessage(error)).toBe("Too many requests. Try again in 7 s.");
  });

  it("falls back to details.retry_after without the header", async () => {
    const error = await errorFromResponse(
      jsonResponse(429, { error: { code: "rate_limited", message: "x", details: { retry_after: 3 } } }),
    );
    expect(error.retryAfter).toBe(3);
  });

  it("derives a code from the status when the body is not the API's (a proxy's page)", async () => {
    const error = await errorFromResponse(new Response("<html>Bad gateway</html>", { status: 502 }));
    expect(error.code).toBe("unavailable");
    expect(readableMessage(error)).toMatch(/temporarily unavailable/);
  });
});

describe("readableMessage", () => {
  it("maps the codes a person meets to sentences", () => {
    expect(readableMessage(new ApiError(423, "account_locked", "locked"))).toMatch(/locked/);
    expect(readableMessage(new ApiError(402, "insufficient_balance", "x"))).toMatch(/Top up/);
    expect(readableMessage(new ApiError(415, "unsupported_type", "x"))).toMatch(/pdf/);
  });

  it("lists the fields of a validation error", () => {
    const error = new ApiError(422, "validation_error", "invalid", [
      { loc: ["body", "password"], msg: "too common", type: "value_error" },
    ]);
    expect(readableMessage(error)).toBe("password: too common");
  });

  it("keeps the server's message for a code it does not know", () => {
    expect(readableMessage(new ApiError(409, "something_new", "Exactly what happened"))).toBe("Exactly what happened");
  });
});
