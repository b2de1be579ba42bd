/**
 * One WebSocket to `/api/ws` for the whole console: it authenticates with a first frame, subscribes to
 * topics, and after a drop reconnects with backoff and resubscribes from the last event id it saw, so
 * no event is missed or shown twice (the server delivers at least once; events are deduplicated by id).
 */
import type { LiveEvent } from "./types";

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";
type Handler = (event: LiveEvent) => void;

/** The subset of the browser WebSocket this client uses (tests pass a fake). */
export interface SocketLike {
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type LiveSocketOptions = {
  url: string;
  /** `fresh`: the server refused the last token, so a refreshed one is needed. */
  getToken: (fresh: boolean) => Promise<string>;
  createSocket?: (url: string) => SocketLike;
  /** Milliseconds before the attempt-th reconnection (attempt starts at 1). */
  backoff?: (attempt: number) => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  pingIntervalMs?: number;
};

/** Close codes after which a new token is needed before reconnecting. */
const AUTH_CLOSE_CODES = new Set([4001, 4401]);
const OPEN = 1;

export function defaultBackoff(attempt: number): number {
  const base = Math.min(30_000, 500 * 2 ** (attempt - 1));
  return base / 2 + Math.random() * (base / 2);
}

/** Orders event ids (`<ms>-<seq>` or a plain counter) numerically. */
export function compareEventIds(a: string, b: string): number {
  const [aMajor, aMinor = "0"] = a.split("-");
  const [bMajor, bMinor = "0"] = b.split("-");
  const major = BigInt(aMajor) - BigInt(bMajor);
  if (major !== BigInt(0)) return major > BigInt(0) ? 1 : -1;
  const minor = BigInt(aMinor) - BigInt(bMinor);
  return minor === BigInt(0) ? 0 : minor > BigInt(0) ? 1 : -1;
}

type Topic = { handlers: Set<Handler>; lastEventId: string | null; replayFrom: string | null };

export class LiveSocket {
  private readonly options: Required<LiveSocketOptions>;
  private socket: SocketLike | null = null;
  private readonly topics = new Map<string, Topic>();
  private readonly stateListeners = new Set<(state: ConnectionState) => void>();
  private attempt = 0;
  private timer: unknown = null;
  private pinger: unknown = null;
  private stopped = true;
  private needsFreshToken = false;
  state: ConnectionState = "closed";

  constructor(options: LiveSocketOptions) {
    this.options = {
      createSocket: (url) => new WebSocket(url) as unknown as SocketLike,
      backoff: defaultBackoff,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
      pingIntervalMs: 25_000,
      ...options,
    };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, "bye");
    this.setState("closed");
  }

  onState(listener: (state: ConnectionState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /**
   * Listens to a topic. `from` replays retained events after that id ("0": all retained); without it
   * only live events arrive. Returns the unsubscribe function.
   */
  subscribe(topic: string, handler: Handler, from: string | null = null): () => void {
    let entry = this.topics.get(topic);
    if (!entry) {
      entry = { handlers: new Set(), lastEventId: null, replayFrom: from };
      this.topics.set(topic, entry);
      this.sendSubscribe(topic, entry);
    }
    entry.handlers.add(handler);
    return () => {
      const current = this.topics.get(topic);
      if (!current) return;
      current.handlers.delete(handler);
      if (current.handlers.size === 0) {
        this.topics.delete(topic);
        this.sendFrame({ type: "unsubscribe", topic });
      }
    };
  }

  lastEventId(topic: string): string | null {
    return this.topics.get(topic)?.lastEventId ?? null;
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    for (const listener of this.stateListeners) listener(state);
  }

  private clearTimers(): void {
    if (this.timer !== null) this.options.clearTimer(this.timer);
    if (this.pinger !== null) this.options.clearTimer(this.pinger);
    this.timer = null;
    this.pinger = null;
  }

  private sendFrame(frame: Record<string, unknown>): void {
    if (this.socket && this.socket.readyState === OPEN && this.authenticated) {
      this.socket.send(JSON.stringify(frame));
    }
  }

  private authenticated = false;

  private sendSubscribe(topic: string, entry: Topic): void {
    this.sendFrame({ type: "subscribe", topic, last_event_id: entry.lastEventId ?? entry.replayFrom });
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    let token: string;
    try {
      token = await this.options.getToken(this.needsFreshToken);
    } catch {
      this.scheduleReconnect();
      return;
    }
    if (this.stopped) return;
    this.needsFreshToken = false;
    const socket = this.options.createSocket(this.options.url);
    this.socket = socket;
    this.authenticated = false;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      socket.send(JSON.stringify({ type: "auth", token }));
      this.authenticated = true;
      for (const [topic, entry] of this.topics) this.sendSubscribe(topic, entry);
      this.startPinging(socket);
      this.setState("open");
    };
    socket.onmessage = (message) => this.handleFrame(message.data);
    socket.onerror = () => {
      // A close event follows; reconnection happens there.
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.authenticated = false;
      if (this.pinger !== null) this.options.clearTimer(this.pinger);
      this.pinger = null;
      if (this.stopped) return;
      if (AUTH_CLOSE_CODES.has(event.code)) this.needsFreshToken = true;
      this.scheduleReconnect();
    };
  }

  private startPinging(socket: SocketLike): void {
    const tick = () => {
      if (this.socket !== socket) return;
      this.sendFrame({ type: "ping" });
      this.pinger = this.options.setTimer(tick, this.options.pingIntervalMs);
    };
    this.pinger = this.options.setTimer(tick, this.options.pingIntervalMs);
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.attempt += 1;
    this.setState("reconnecting");
    this.timer = this.options.setTimer(() => {
      this.timer = null;
      void this.connect();
    }, this.options.backoff(this.attempt));
  }

  private handleFrame(raw: unknown): void {
    if (typeof raw !== "string") return;
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return;
    }
    // Any frame means the token was accepted: the next drop starts the backoff again from the shortest.
    this.attempt = 0;
    if (frame.type === "subscribed" || frame.type === "pong" || frame.type === "error") return;
    if (typeof frame.id !== "string" || typeof frame.topic !== "string") return;
    const entry = this.topics.get(frame.topic);
    if (!entry) return;
    if (entry.lastEventId !== null && compareEventIds(frame.id, entry.lastEventId) <= 0) return;
    entry.lastEventId = frame.id;
    const event = frame as unknown as LiveEvent;
    for (const handler of entry.handlers) handler(event);
  }
}
