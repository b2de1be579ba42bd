"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { AppShell } from "@/components/AppShell";
import { useSelectedAssistant } from "@/components/SelectedAssistant";
import { AssistantPicker, ConfirmButton, Empty, ErrorText, Loading, PageTitle, formatDate } from "@/components/ui";
import { API_BASE, api, type Page } from "@/lib/api";
import { keys, useAssistants } from "@/lib/queries";
import type { Assistant, Bot } from "@/lib/types";

function escapeAttribute(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
}

function widgetSnippet(origin: string, publicKey: string, title: string, color: string): string {
  const attributes = [`src="${origin}/widget.js"`, `data-public-key="${escapeAttribute(publicKey)}"`];
  if (title) attributes.push(`data-title="${escapeAttribute(title)}"`);
  if (color) attributes.push(`data-color="${escapeAttribute(color)}"`);
  return `<script ${attributes.join(" ")} async></script>`;
}

function Widget({ assistant }: { assistant: Assistant }) {
  const queryClient = useQueryClient();
  const [origins, setOrigins] = useState(assistant.widget_allowed_origins.join("\n"));
  const [title, setTitle] = useState(assistant.name);
  const [color, setColor] = useState("#4f46e5");
  const [copied, setCopied] = useState(false);
  const origin = API_BASE || (typeof window === "undefined" ? "" : window.location.origin);
  const snippet = widgetSnippet(origin, assistant.public_key, title, color);
  const save = useMutation({
    mutationFn: () =>
      api<Assistant>(`/api/assistants/${assistant.id}`, {
        method: "PATCH",
        body: { widget_allowed_origins: origins.split(/\s+/).filter(Boolean) },
      }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.assistants }),
  });
  const copy = async () => {
    await navigator.clipboard.writeText(snippet);
    setCopied(true);
    setTimeout(() => setCopied(false), 2000);
  };
  // The preview runs the real widget script in a frame of this origin, which the API always allows.
  const preview = useMemo(
    () =>
      `<!doctype html><html><body style="margin:0;font-family:sans-serif"><p style="padding:12px;color:#64748b">Your page</p>${widgetSnippet(origin, assistant.public_key, title, color)}</body></html>`,
    [origin, assistant.public_key, title, color],
  );
  return (
    <section aria-labelledby="widget-title" className="card mb-4">
      <h2 id="widget-title" className="mb-2 font-medium">Website widget</h2>
      <div className="grid gap-4 lg:grid-cols-2">
        <div className="space-y-3">
          <form
            onSubmit={(e) => {
              e.preventDefault();
              save.mutate();
            }}
          >
            <label htmlFor="origins" className="label">Allowed origins (one per line; empty turns the widget off)</label>
            <textarea id="origins" rows={3} className="field font-mono" placeholder="https://www.example.com" value={origins} onChange={(e) => setOrigins(e.target.value)} />
            <ErrorText error={save.error} />
            {save.isSuccess && <p role="status" className="text-sm text-green-700">Saved.</p>}
            <button type="submit" className="btn-secondary mt-2" disabled={save.isPending}>Save origins</button>
          </form>
          <div className="grid grid-cols-2 gap-2">
            <div>
              <label htmlFor="widget-title-input" className="label">Title</label>
              <input id="widget-title-input" className="field" value={title} onChange={(e) => setTitle(e.target.value)} />
            </div>
            <div>
              <label htmlFor="widget-color" className="label">Color</label>
              <input id="widget-color" type="color" className="field h-10" value={color} onChange={(e) => setColor(e.target.value)} />
            </div>
          </div>
          <div>
            <label htmlFor="snippet" className="label">Snippet for your page</label>
            <textarea id="snippet" readOnly rows={4} className="field font-mono text-xs" value={snippet} />
            <button type="button" className="btn mt-2" onClick={() => void copy()}>
              {copied ? "Copied" : "Copy snippet"}
            </button>
            <span role="status" className="sr-only">{copied ? "Snippet copied" : ""}</span>
          </div>
        </div>
        <div>
          <p className="label mb-1">Live preview</p>
          <iframe key={preview} title="Widget preview" srcDoc={preview} className="h-[28rem] w-full rounded border border-slate-200 bg-slate-50" />
        </div>
      </div>
    </section>
  );
}

function Telegram() {
  const queryClient = useQueryClient();
  const assistants = useAssistants();
  const { assistantId } = useSelectedAssistant();
  const [token, setToken] = useState("");
  const bots = useQuery({ queryKey: keys.bots, queryFn: () => api<Page<Bot>>("/api/bots", { query: { limit: 200 } }) });
  const connect = useMutation({
    mutationFn: () => api<Bot>("/api/bots", { method: "POST", body: { assistant_id: assistantId, token } }),
    onSuccess: () => {
      setToken("");
      void queryClient.invalidateQueries({ queryKey: keys.bots });
    },
  });
  const remove = useMutation({
    mutationFn: (id: string) => api(`/api/bots/${id}`, { method: "DELETE" }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.bots }),
  });
  const toggle = useMutation({
    mutationFn: ({ id, action }: { id: string; action: "pause" | "resume" }) =>
      api<Bot>(`/api/bots/${id}/${action}`, { method: "POST" }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.bots }),
  });
  const nameOf = (id: string) => assistants.data?.items.find((a) => a.id === id)?.name ?? id;
  return (
    <section aria-labelledby="telegram-title" className="card">
      <h2 id="telegram-title" className="mb-2 font-medium">Telegram bots</h2>
      <form
        className="flex flex-wrap items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          connect.mutate();
        }}
      >
        <div className="min-w-64 flex-1">
          <label htmlFor="bot-token" className="label">Bot token from @BotFather</label>
          <input id="bot-token" className="field font-mono" required autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} placeholder="123456:ABC…" />
        </div>
        <button type="submit" className="btn" disabled={!assistantId || connect.isPending}>
          {connect.isPending ? "Connecting…" : "Connect bot"}
        </button>
      </form>
      <ErrorText error={connect.error ?? remove.error ?? toggle.error} />
      <div className="mt-4">
        {bots.isPending ? (
          <Loading what="Loading bots" />
        ) : bots.error ? (
          <ErrorText error={bots.error} />
        ) : bots.data.items.length === 0 ? (
          <Empty>No bots connected.</Empty>
        ) : (
          <ul className="space-y-2">
            {bots.data.items.map((bot) => (
              <li key={bot.id} className="rounded border border-slate-200 p-3 text-sm" data-bot={bot.username}>
                <div className="flex flex-wrap items-center justify-between gap-2">
                  <div>
                    <p className="font-medium">@{bot.username} → {nameOf(bot.assistant_id)}</p>
                    <p className="text-slate-600">
                      <span className={bot.status === "active" ? "text-green-700" : "text-red-700"}>{bot.status}</span>
                      {" · "}
                      {bot.webhook_url ? "webhook" : "long polling"} · {bot.pending_update_count} pending updates
                      {bot.paused_until && ` · paused until ${formatDate(bot.paused_until)}`}
                    </p>
                    {bot.disabled_reason && <p className="text-red-700">Disabled: {bot.disabled_reason}</p>}
                    {bot.last_webhook_error && <p className="text-amber-800">Last error: {bot.last_webhook_error}</p>}
                  </div>
                  <div className="flex gap-2">
                    <button
                      type="button"
                      className="btn-secondary"
                      disabled={toggle.isPending}
                      onClick={() => toggle.mutate({ id: bot.id, action: bot.status === "active" ? "pause" : "resume" })}
                    >
                      {bot.status === "active" ? "Pause" : "Resume"}
                    </button>
                    <ConfirmButton label="Delete" confirmLabel={`Delete @${bot.username}`} onConfirm={() => remove.mutate(bot.id)} />
                  </div>
                </div>
              </li>
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}

function Channels() {
  const { assistantId } = useSelectedAssistant();
  const assistants = useAssistants();
  const assistant = assistants.data?.items.find((a) => a.id === assistantId);
  return (
    <>
      <PageTitle title="Channels">
        <AssistantPicker />
      </PageTitle>
      {assistants.isPending ? (
        <Loading />
      ) : !assistant ? (
        <Empty>Create an assistant first.</Empty>
      ) : (
        <>
          <Widget key={assistant.id} assistant={assistant} />
          <Telegram />
        </>
      )}
    </>
  );
}

export default function ChannelsPage() {
  return (
    <AppShell>
      <Channels />
    </AppShell>
  );
}
