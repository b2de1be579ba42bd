import { describe, expect, it } from "vitest";
import { LiveSocket, compareEventIds, type SocketLike } from "./ws";

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  closed: { code?: number } | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {}
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code?: number) {
    this.closed = { code };
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(frame: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }
}

function harness() {
  const sockets: FakeSocket[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const tokens: boolean[] = [];
  const live = new LiveSocket({
    url: "ws://test/api/ws",
    getToken: async (fresh) => {
      tokens.push(fresh);
      return fresh ? "fresh-token" : "token";
    },
    createSocket: (url) => {
      const socket = new FakeSocket(url);
      sockets.push(socket);
      return socket;
    },
    backoff: (attempt) => attempt * 1000,
    setTimer: (fn, ms) => {
      const timer = { fn, ms };
      timers.push(timer);
      return timer;
    },
    clearTimer: (handle) => {
      const index = timers.indexOf(handle as { fn: () => void; ms: number });
      if (index >= 0) timers.splice(index, 1);
    },
    pingIntervalMs: 25_000,
  });
  const flush = () => new Promise((resolve) => setTimeout(resolve, 0));
  const fireReconnect = async () => {
    const timer = timers.find((t) => t.ms !== 25_000);
    if (!timer) throw new Error("no reconnect scheduled");
    timers.splice(timers.indexOf(timer), 1);
    timer.fn();
    await flush();
  };
  return { live, sockets, timers, tokens, flush, fireReconnect };
}

const event = (id: string, topic = "user", type = "document.status") => ({ id, topic, type, data: { n: id } });

describe("compareEventIds", () => {
  it("orders stream ids numerically, not as text", () => {
    expect(compareEventIds("10-0", "9-5")).toBe(1);
    expect(compareEventIds("5-10", "5-9")).toBe(1);
    expect(compareEventIds("5-1", "5-1")).toBe(0);
    expect(compareEventIds("7", "8")).toBe(-1);
  });
});

describe("LiveSocket", () => {
  it("authenticates with the first frame, then subscribes", async () => {
    const { live, sockets, flush } = harness();
    live.subscribe("user", () => {}, null);
    live.start();
    await flush();
    sockets[0].open();
    expect(sockets[0].sent).toEqual([
      { type: "auth", token: "token" },
      { type: "subscribe", topic: "user", last_event_id: null },
    ]);
    expect(live.state).toBe("open");
  });

  it("resubscribes from the last event id after a drop and drops replayed duplicates", async () => {
    const { live, sockets, flush, fireReconnect } = harness();
    const seen: string[] = [];
    live.subscribe("dialog:d1", (e) => seen.push(e.id));
    live.start();
    await flush();
    sockets[0].open();
    sockets[0].receive(event("100-0", "dialog:d1"));
    sockets[0].receive(event("100-1", "dialog:d1"));
    sockets[0].drop();
    expect(live.state).toBe("reconnecting");
    await fireReconnect();
    sockets[1].open();
    expect(sockets[1].sent[1]).toEqual({ type: "subscribe", topic: "dialog:d1", last_event_id: "100-1" });
    // The replay may repeat what was already delivered (at-least-once): each id reaches handlers once.
    sockets[1].receive(event("100-1", "dialog:d1"));
    sockets[1].receive(event("101-0", "dialog:d1"));
    expect(seen).toEqual(["100-0", "100-1", "101-0"]);
  });

  it("backs off longer on each failed attempt and resets once the server answers", async () => {
    const { live, sockets, timers, flush, fireReconnect } = harness();
    live.subscribe("user", () => {});
    live.start();
    await flush();
    sockets[0].drop();
    expect(timers.at(-1)?.ms).toBe(1000);
    await fireReconnect();
    sockets[1].drop();
    expect(timers.at(-1)?.ms).toBe(2000);
    await fireReconnect();
    sockets[2].open();
    sockets[2].receive({ type: "subscribed", topic: "user" });
    sockets[2].drop();
    expect(timers.filter((t) => t.ms !== 25_000).at(-1)?.ms).toBe(1000);
  });

  it("asks for a fresh token after the server closes for an expired or refused token", async () => {
    const { live, sockets, tokens, flush, fireReconnect } = harness();
    live.start();
    await flush();
    sockets[0].open();
    sockets[0].drop(4401);
    await fireReconnect();
    expect(tokens).toEqual([false, true]);
    sockets[1].open();
    expect(sockets[1].sent[0]).toEqual({ type: "auth", token: "fresh-token" });
  });

  it("unsubscribes when the last handler leaves and stops for good on stop()", async () => {
    const { live, sockets, timers, flush } = harness();
    const off = live.subscribe("user", () => {});
    live.start();
    await flush();
    sockets[0].open();
    off();
    expect(sockets[0].sent.at(-1)).toEqual({ type: "unsubscribe", topic: "user" });
    live.stop();
    expect(sockets[0].closed).toEqual({ code: 1000 });
    sockets[0].drop(1000);
    expect(timers.filter((t) => t.ms !== 25_000)).toHaveLength(0);
    expect(live.state).toBe("closed");
  });

  it("ignores events of topics it no longer follows and frames that are not JSON", async () => {
    const { live, sockets, flush } = harness();
    const seen: string[] = [];
    live.subscribe("user", (e) => seen.push(e.id));
    live.start();
    await flush();
    sockets[0].open();
    sockets[0].onmessage?.({ data: "not json" });
    sockets[0].receive(event("5", "dialog:other"));
    sockets[0].receive(event("6"));
    expect(seen).toEqual(["6"]);
  });
});
