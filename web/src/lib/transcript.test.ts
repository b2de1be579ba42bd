import { describe, expect, it } from "vitest";
import { applyEvent, type Turn } from "./transcript";

const ev = (id: string, type: string, data: Record<string, unknown>) => ({ id, topic: "dialog:d", type, data });

describe("applyEvent", () => {
  it("streams deltas into a reply and completes it with usage and citations", () => {
    let turns: Turn[] = [];
    turns = applyEvent(turns, ev("1", "reply.started", { reply_id: "r" }));
    turns = applyEvent(turns, ev("2", "reply.delta", { reply_id: "r", text: "Hel" }));
    turns = applyEvent(turns, ev("3", "reply.delta", { reply_id: "r", text: "lo" }));
    expect(turns[0]).toMatchObject({ status: "generating", content: "Hello" });
    turns = applyEvent(turns, ev("4", "reply.completed", { reply_id: "r", content: "Hello!", usage: { prompt_tokens: 3, completion_tokens: 2 }, citations: [{ filename: "a.md" }] }));
    expect(turns[0]).toMatchObject({ status: "completed", content: "Hello!", usage: { prompt_tokens: 3 } });
    expect(turns[0].citations).toHaveLength(1);
  });

  it("replaces the text on a reset delta", () => {
    let turns = applyEvent([], ev("1", "reply.delta", { reply_id: "r", text: "abc" }));
    turns = applyEvent(turns, ev("2", "reply.delta", { reply_id: "r", text: "xy", reset: true }));
    expect(turns[0].content).toBe("xy");
  });

  it("ignores replayed deltas for a reply that already ended", () => {
    const done: Turn = { id: "r", role: "assistant", content: "final", status: "completed", error: null, usage: null, cost_micros: null, citations: [] };
    expect(applyEvent([done], ev("1", "reply.delta", { reply_id: "r", text: "again" }))[0].content).toBe("final");
    expect(applyEvent([done], ev("1", "reply.started", { reply_id: "r" }))[0].content).toBe("final");
  });
});
