"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { AppShell } from "@/components/AppShell";
import { useTopic } from "@/components/LiveProvider";
import { Markdown } from "@/components/Markdown";
import { ConfirmButton, Empty, ErrorText, Loading, PageTitle, formatDate } from "@/components/ui";
import { api, type Page } from "@/lib/api";
import { keys, useAssistants, useMe } from "@/lib/queries";
import type { Dialog, Message } from "@/lib/types";

type Invitation = { id: string; assistant_id: string; assistant_name: string; created_at: string };

function Invitations() {
  const queryClient = useQueryClient();
  const invitations = useQuery({
    queryKey: ["invitations"],
    queryFn: () => api<Page<Invitation>>("/api/operator-invitations"),
  });
  const answer = useMutation({
    mutationFn: ({ id, accept }: { id: string; accept: boolean }) =>
      accept
        ? api(`/api/operator-invitations/${id}/accept`, { method: "POST" })
        : api(`/api/operator-invitations/${id}`, { method: "DELETE" }),
    onSuccess: () => queryClient.invalidateQueries(),
  });
  if (!invitations.data || invitations.data.items.length === 0) return null;
  return (
    <section aria-labelledby="inv-title" className="card mb-4">
      <h2 id="inv-title" className="mb-2 font-medium">Invitations</h2>
      <ul className="space-y-2 text-sm">
        {invitations.data.items.map((inv) => (
          <li key={inv.id} className="flex flex-wrap items-center justify-between gap-2">
            <span>Answer for {inv.assistant_name}</span>
            <span className="flex gap-2">
              <button type="button" className="btn" onClick={() => answer.mutate({ id: inv.id, accept: true })}>Accept</button>
              <button type="button" className="btn-secondary" onClick={() => answer.mutate({ id: inv.id, accept: false })}>Decline</button>
            </span>
          </li>
        ))}
      </ul>
      <ErrorText error={answer.error} />
    </section>
  );
}

function Transcript({ dialog }: { dialog: Dialog }) {
  const queryClient = useQueryClient();
  const me = useMe();
  const [text, setText] = useState("");
  const messages = useQuery({
    queryKey: keys.messages(dialog.id),
    queryFn: () => api<Page<Message>>(`/api/dialogs/${dialog.id}/messages`, { query: { limit: 200 } }),
  });
  useTopic(`dialog:${dialog.id}`, (event) => {
    if (event.type === "reply.delta" || event.type === "reply.started") return;
    void queryClient.invalidateQueries({ queryKey: keys.messages(dialog.id) });
    if (event.type.startsWith("dialog.")) void queryClient.invalidateQueries({ queryKey: ["dialogs"] });
  });
  const refresh = () => {
    void queryClient.invalidateQueries({ queryKey: ["dialogs"] });
    void queryClient.invalidateQueries({ queryKey: keys.messages(dialog.id) });
  };
  const takeover = useMutation({ mutationFn: () => api<Dialog>(`/api/dialogs/${dialog.id}/takeover`, { method: "POST" }), onSuccess: refresh });
  const release = useMutation({ mutationFn: () => api<Dialog>(`/api/dialogs/${dialog.id}/release`, { method: "POST" }), onSuccess: refresh });
  const reply = useMutation({
    mutationFn: () => api<Message>(`/api/dialogs/${dialog.id}/operator-messages`, { method: "POST", body: { content: text } }),
    onSuccess: () => {
      setText("");
      refresh();
    },
  });
  const heldByMe = dialog.operator_id !== null && dialog.operator_id === me.data?.id;
  return (
    <section aria-label="Transcript" className="card flex min-h-[50vh] flex-col">
      <div className="mb-3 flex flex-wrap items-center justify-between gap-2 border-b border-slate-200 pb-2">
        <div>
          <h2 className="font-medium">{dialog.title ?? "Conversation"}</h2>
          <p className="text-xs text-slate-500">
            {dialog.source} · {formatDate(dialog.created_at)} · {dialog.operator_id ? (heldByMe ? "held by you" : "held by an operator") : "assistant answering"}
          </p>
        </div>
        <div className="flex gap-2">
          {!dialog.operator_id && (
            <button type="button" className="btn" onClick={() => takeover.mutate()} disabled={takeover.isPending}>Take over</button>
          )}
          {dialog.operator_id && (
            <ConfirmButton label="Release" confirmLabel="Hand back to the assistant" onConfirm={() => release.mutate()} />
          )}
        </div>
      </div>
      <ErrorText error={takeover.error ?? release.error} />
      {messages.isPending ? (
        <Loading what="Loading messages" />
      ) : messages.error ? (
        <ErrorText error={messages.error} />
      ) : messages.data.items.length === 0 ? (
        <Empty>No messages yet.</Empty>
      ) : (
        <ol className="flex-1 space-y-2 overflow-y-auto text-sm" aria-live="polite">
          {messages.data.items.map((m) => (
            <li key={m.id} className={m.role === "user" ? "text-right" : ""}>
              <div className={`inline-block max-w-[85%] rounded-lg px-3 py-2 text-left ${m.role === "user" ? "bg-slate-200" : "border border-slate-200 bg-white"}`}>
                <p className="text-xs text-slate-500">
                  {m.role === "user" ? "Visitor" : m.author_id ? "Operator" : "Assistant"} · {m.status}
                </p>
                <Markdown text={m.content} />
              </div>
            </li>
          ))}
        </ol>
      )}
      {heldByMe && (
        <form
          className="mt-3 flex gap-2"
          onSubmit={(e) => {
            e.preventDefault();
            if (text.trim()) reply.mutate();
          }}
        >
          <label htmlFor="operator-reply" className="sr-only">Your answer</label>
          <textarea id="operator-reply" rows={2} className="field" value={text} onChange={(e) => setText(e.target.value)} />
          <button type="submit" className="btn" disabled={reply.isPending || !text.trim()}>Answer</button>
        </form>
      )}
      <ErrorText error={reply.error} />
    </section>
  );
}

function Inbox() {
  const assistants = useAssistants();
  const [assistantFilter, setAssistantFilter] = useState("");
  const [selected, setSelected] = useState<string | null>(null);
  const dialogs = useQuery({
    queryKey: keys.dialogs(assistantFilter || null),
    queryFn: () => api<Page<Dialog>>("/api/dialogs", { query: { assistant_id: assistantFilter, limit: 100 } }),
    // New dialogs have no event of their own; a short poll shows them.
    refetchInterval: 10_000,
  });
  const nameOf = (id: string) => assistants.data?.items.find((a) => a.id === id)?.name ?? "";
  const dialog = dialogs.data?.items.find((d) => d.id === selected) ?? null;
  return (
    <>
      <PageTitle title="Inbox">
        <div className="min-w-48">
          <label htmlFor="inbox-assistant" className="label">Assistant</label>
          <select id="inbox-assistant" className="field" value={assistantFilter} onChange={(e) => setAssistantFilter(e.target.value)}>
            <option value="">All</option>
            {assistants.data?.items.map((a) => (
              <option key={a.id} value={a.id}>{a.name}</option>
            ))}
          </select>
        </div>
      </PageTitle>
      <Invitations />
      <div className="grid gap-4 lg:grid-cols-[20rem_1fr]">
        <section aria-label="Dialogs" className="card max-h-[70vh] overflow-y-auto p-2">
          {dialogs.isPending ? (
            <Loading what="Loading dialogs" />
          ) : dialogs.error ? (
            <ErrorText error={dialogs.error} />
          ) : dialogs.data.items.length === 0 ? (
            <Empty>No conversations yet.</Empty>
          ) : (
            <ul className="space-y-1">
              {dialogs.data.items.map((d) => (
                <li key={d.id}>
                  <button
                    type="button"
                    aria-pressed={d.id === selected}
                    onClick={() => setSelected(d.id)}
                    className={`w-full rounded px-2 py-2 text-left text-sm ${d.id === selected ? "bg-indigo-50" : "hover:bg-slate-100"}`}
                  >
                    <span className="block font-medium">{d.title ?? "Conversation"}</span>
                    <span className="block text-xs text-slate-500">
                      <span data-source={d.source}>{d.source}</span> · {nameOf(d.assistant_id)} · {formatDate(d.created_at)}
                      {d.operator_id ? " · operator" : ""}
                    </span>
                  </button>
                </li>
              ))}
            </ul>
          )}
        </section>
        {dialog ? <Transcript key={dialog.id} dialog={dialog} /> : <Empty>Choose a conversation to read it.</Empty>}
      </div>
    </>
  );
}

export default function InboxPage() {
  return (
    <AppShell>
      <Inbox />
    </AppShell>
  );
}
