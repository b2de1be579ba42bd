/** A dialog's transcript as REST loads it and WebSocket events change it. */
import type { Citation, LiveEvent, Message } from "./types";

export type Turn = {
  id: string;
  role: Message["role"];
  content: string;
  status: string;
  error: { code: string; message: string } | null;
  usage: Message["usage"] | null;
  cost_micros: number | null;
  citations: Citation[];
};

export const ENDED = new Set(["completed", "failed", "cancelled"]);

export function fromMessage(m: Message): Turn {
  return { ...m, usage: m.usage };
}

/** Applies one dialog event to the transcript (events may repeat after a reconnect; each is idempotent). */
export function applyEvent(turns: Turn[], event: LiveEvent): Turn[] {
  const data = event.data as Record<string, unknown>;
  const replyId = (data.reply_id as string | undefined) ?? null;
  if (!replyId) return turns;
  const index = turns.findIndex((t) => t.id === replyId);
  const current: Turn =
    index >= 0
      ? turns[index]
      : { id: replyId, role: "assistant", content: "", status: "queued", error: null, usage: null, cost_micros: null, citations: [] };
  if (ENDED.has(current.status) && event.type !== "reply.completed") return turns;
  let next: Turn = current;
  switch (event.type) {
    case "reply.started":
      next = { ...current, status: "generating", content: "" };
      break;
    case "reply.delta":
      next = {
        ...current,
        status: "generating",
        content: data.reset ? String(data.text ?? "") : current.content + String(data.text ?? ""),
      };
      break;
    case "reply.completed":
      next = {
        ...current,
        status: "completed",
        content: String(data.content ?? current.content),
        usage: (data.usage as Turn["usage"]) ?? current.usage,
        citations: (data.citations as Citation[]) ?? current.citations,
        cost_micros: (data.cost_micros as number | null) ?? current.cost_micros,
      };
      break;
    case "reply.failed":
      next = { ...current, status: "failed", error: data.error as Turn["error"] };
      break;
    case "reply.cancelled":
      next = { ...current, status: "cancelled", content: String(data.content ?? current.content) };
      break;
    default:
      return turns;
  }
  if (index >= 0) return turns.map((t, i) => (i === index ? next : t));
  return [...turns, next];
}

