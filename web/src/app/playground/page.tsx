"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useEffect, useRef, useState } from "react";
import { AppShell } from "@/components/AppShell";
import { useTopic } from "@/components/LiveProvider";
import { Markdown } from "@/components/Markdown";
import { useSelectedAssistant } from "@/components/SelectedAssistant";
import { AssistantPicker, Empty, ErrorText, Loading, PageTitle } from "@/components/ui";
import { api, type Page } from "@/lib/api";
import { keys } from "@/lib/queries";
import { ENDED, applyEvent, fromMessage, type Turn } from "@/lib/transcript";
import { formatMoney, type Dialog, type Message, type PostedMessage } from "@/lib/types";

function TurnView({ turn, onCancel }: { turn: Turn; onCancel: (id: string) => void }) {
  const mine = turn.role === "user";
  const live = turn.role === "assistant" && !ENDED.has(turn.status);
  return (
    <li className={`flex ${mine ? "justify-end" : "justify-start"}`}>
      <article
        aria-label={mine ? "You" : "Assistant"}
        aria-busy={live}
        data-reply-status={turn.role === "assistant" ? turn.status : undefined}
        className={`max-w-[85%] rounded-lg px-3 py-2 text-sm ${mine ? "bg-indigo-600 text-white" : "border border-slate-200 bg-white"}`}
      >
        {mine ? <p className="whitespace-pre-wrap">{turn.content}</p> : <Markdown text={turn.content || (live ? "…" : "")} />}
        {turn.error && <p className="mt-1 text-red-700">Failed: {turn.error.message}</p>}
        {turn.status === "cancelled" && <p className="mt-1 text-xs text-slate-500">Cancelled</p>}
        {turn.citations.length > 0 && (
          <p className="mt-2 text-xs text-slate-600">
            Sources:{" "}
            {turn.citations.map((c, i) => (
              <span key={c.chunk_id}>
                {i > 0 && ", "}
                <Link className="underline" href={`/knowledge/#doc-${c.document_id}`}>
                  {c.filename}
                </Link>
              </span>
            ))}
          </p>
        )}
        {turn.role === "assistant" && turn.status === "completed" && turn.usage && (
          <p className="mt-1 text-xs text-slate-500" data-testid="usage">
            {turn.usage.prompt_tokens ?? 0} prompt + {turn.usage.completion_tokens ?? 0} completion tokens · cost{" "}
            {turn.cost_micros === null ? "pending" : formatMoney(turn.cost_micros)}
          </p>
        )}
        {live && (
          <button type="button" className="mt-2 text-xs text-red-700 underline" onClick={() => onCancel(turn.id)}>
            Stop generating
          </button>
        )}
      </article>
    </li>
  );
}

function Chat({ dialog }: { dialog: Dialog }) {
  const [turns, setTurns] = useState<Turn[]>([]);
  const [text, setText] = useState("");
  const bottom = useRef<HTMLDivElement>(null);
  const history = useQuery({
    queryKey: keys.messages(dialog.id),
    queryFn: () => api<Page<Message>>(`/api/dialogs/${dialog.id}/messages`, { query: { limit: 200 } }),
  });
  useEffect(() => {
    if (history.data) setTurns((live) => {
      const loaded = history.data.items.map(fromMessage);
      const known = new Set(loaded.map((t) => t.id));
      return [...loaded, ...live.filter((t) => !known.has(t.id))];
    });
  }, [history.data]);
  // From "0": the whole retained history of this dialog, so nothing sent before the subscription is missed.
  useTopic(`dialog:${dialog.id}`, (event) => setTurns((current) => applyEvent(current, event)), "0");
  useEffect(() => {
    // Braces: newer browsers return a promise from scrollIntoView, and an effect may return only a cleanup.
    bottom.current?.scrollIntoView?.({ block: "end" });
  }, [turns]);

  // The charge lands after the reply completes; fetch it once for replies that show none yet.
  const pendingCost = turns.filter((t) => t.role === "assistant" && t.status === "completed" && t.cost_micros === null);
  const pendingIds = pendingCost.map((t) => t.id).join(",");
  useEffect(() => {
    if (!pendingIds) return;
    const timer = setTimeout(async () => {
      for (const id of pendingIds.split(",")) {
        try {
          const message = await api<Message>(`/api/messages/${id}`);
          if (typeof message.cost_micros === "number") {
            setTurns((current) => current.map((t) => (t.id === id ? { ...t, cost_micros: message.cost_micros, usage: message.usage } : t)));
          }
        } catch {
          // The next completed reply retries.
        }
      }
    }, 1500);
    return () => clearTimeout(timer);
  }, [pendingIds]);

  const send = useMutation({
    mutationFn: (content: string) =>
      api<PostedMessage>(`/api/dialogs/${dialog.id}/messages`, {
        method: "POST",
        body: { content },
        headers: { "Idempotency-Key": crypto.randomUUID() },
      }),
    onSuccess: (posted) => {
      setText("");
      setTurns((current) => {
        let next = current;
        if (posted.reply && !next.some((t) => t.id === posted.reply!.id)) {
          next = [...next, { id: posted.reply.id, role: "assistant", content: "", status: posted.reply.status, error: null, usage: null, cost_micros: null, citations: [] }];
        }
        if (!next.some((t) => t.id === posted.message.id)) {
          // Events may have shown the reply before this answer arrived: the question goes before it.
          const question: Turn = { id: posted.message.id, role: "user", content: posted.message.content, status: "completed", error: null, usage: null, cost_micros: null, citations: [] };
          const at = posted.reply ? next.findIndex((t) => t.id === posted.reply!.id) : -1;
          next = at >= 0 ? [...next.slice(0, at), question, ...next.slice(at)] : [...next, question];
        }
        return next;
      });
    },
  });
  const cancel = useMutation({
    mutationFn: (replyId: string) => api<Message>(`/api/messages/${replyId}/cancel`, { method: "POST" }),
  });
  const busy = turns.some((t) => t.role === "assistant" && !ENDED.has(t.status));

  return (
    <section aria-label="Conversation" className="card flex min-h-[60vh] flex-col">
      {history.isPending ? (
        <Loading what="Loading the conversation" />
      ) : (
        <ol aria-live="polite" className="flex-1 space-y-3 overflow-y-auto">
          {turns.length === 0 && <Empty>Ask something to try the assistant.</Empty>}
          {turns.map((t) => (
            <TurnView key={t.id} turn={t} onCancel={(id) => cancel.mutate(id)} />
          ))}
        </ol>
      )}
      <div ref={bottom} />
      <ErrorText error={history.error ?? cancel.error} />
      <form
        className="mt-4 flex flex-col gap-2 sm:flex-row sm:items-end"
        onSubmit={(e) => {
          e.preventDefault();
          if (text.trim()) send.mutate(text);
        }}
      >
        <div className="flex-1">
          <label htmlFor="message" className="sr-only">
            Message
          </label>
          <textarea
            id="message"
            className="field"
            rows={2}
            placeholder="Ask the assistant…"
            value={text}
            maxLength={16000}
            onChange={(e) => setText(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                if (text.trim()) send.mutate(text);
              }
            }}
          />
        </div>
        <button type="submit" className="btn" disabled={send.isPending || !text.trim()}>
          {busy ? "Send (reply in progress)" : "Send"}
        </button>
      </form>
      <ErrorText error={send.error} />
    </section>
  );
}

function Playground() {
  const { assistantId } = useSelectedAssistant();
  const queryClient = useQueryClient();
  const [dialog, setDialog] = useState<Dialog | null>(null);
  useEffect(() => {
    setDialog(null);
  }, [assistantId]);
  const start = useMutation({
    mutationFn: () => api<Dialog>("/api/dialogs", { method: "POST", body: { assistant_id: assistantId, title: "Playground" } }),
    onSuccess: (d) => {
      setDialog(d);
      void queryClient.invalidateQueries({ queryKey: ["dialogs"] });
    },
  });
  return (
    <>
      <PageTitle title="Playground">
        <div className="flex flex-wrap items-end gap-2">
          <AssistantPicker />
          <button type="button" className="btn-secondary" disabled={!assistantId || start.isPending} onClick={() => start.mutate()}>
            New conversation
          </button>
        </div>
      </PageTitle>
      <ErrorText error={start.error} />
      {!assistantId ? (
        <Empty>Create an assistant first.</Empty>
      ) : dialog ? (
        <Chat key={dialog.id} dialog={dialog} />
      ) : (
        <Empty>
          <button type="button" className="btn" onClick={() => start.mutate()} disabled={start.isPending}>
            Start a conversation
          </button>
        </Empty>
      )}
    </>
  );
}

export default function PlaygroundPage() {
  return (
    <AppShell>
      <Playground />
    </AppShell>
  );
}
