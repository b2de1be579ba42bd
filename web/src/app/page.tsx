"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { AppShell } from "@/components/AppShell";
import { useSelectedAssistant } from "@/components/SelectedAssistant";
import { ConfirmButton, Empty, ErrorText, Loading, PageTitle, formatDate } from "@/components/ui";
import { api, type Page } from "@/lib/api";
import { keys, useAssistants, useModels } from "@/lib/queries";
import { formatMoney, type Assistant, type Operator } from "@/lib/types";

type Draft = {
  name: string;
  system_prompt: string;
  model: string;
  temperature: string;
  max_tokens: string;
  greeting: string;
  retrieval_top_k: string;
  retrieval_min_score: string;
  telegram_streaming: boolean;
};

const EMPTY: Draft = {
  name: "",
  system_prompt: "",
  model: "",
  temperature: "0.7",
  max_tokens: "1024",
  greeting: "",
  retrieval_top_k: "",
  retrieval_min_score: "",
  telegram_streaming: false,
};

function toDraft(a: Assistant): Draft {
  return {
    name: a.name,
    system_prompt: a.system_prompt,
    model: a.model,
    temperature: String(a.temperature),
    max_tokens: String(a.max_tokens),
    greeting: a.greeting ?? "",
    retrieval_top_k: a.retrieval_top_k === null ? "" : String(a.retrieval_top_k),
    retrieval_min_score: a.retrieval_min_score === null ? "" : String(a.retrieval_min_score),
    telegram_streaming: a.telegram_streaming,
  };
}

function toBody(d: Draft): Record<string, unknown> {
  const body: Record<string, unknown> = {
    name: d.name,
    system_prompt: d.system_prompt,
    temperature: Number(d.temperature),
    max_tokens: Number(d.max_tokens),
    telegram_streaming: d.telegram_streaming,
  };
  if (d.model) body.model = d.model;
  if (d.greeting) body.greeting = d.greeting;
  if (d.retrieval_top_k) body.retrieval_top_k = Number(d.retrieval_top_k);
  if (d.retrieval_min_score) body.retrieval_min_score = Number(d.retrieval_min_score);
  return body;
}

function AssistantForm({ initial, onSaved, existing }: { initial: Draft; existing?: Assistant; onSaved: (a: Assistant) => void }) {
  const [draft, setDraft] = useState<Draft>(initial);
  const models = useModels();
  const queryClient = useQueryClient();
  const save = useMutation({
    mutationFn: () =>
      existing
        ? api<Assistant>(`/api/assistants/${existing.id}`, { method: "PATCH", body: toBody(draft) })
        : api<Assistant>("/api/assistants", { method: "POST", body: toBody(draft) }),
    onSuccess: async (assistant) => {
      await queryClient.invalidateQueries({ queryKey: keys.assistants });
      onSaved(assistant);
    },
  });
  const set = (field: keyof Draft) => (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>) =>
    setDraft((d) => ({ ...d, [field]: e.target.type === "checkbox" ? (e.target as HTMLInputElement).checked : e.target.value }));
  const prefix = existing ? `edit-${existing.id}` : "new";
  return (
    <form
      className="grid gap-3 sm:grid-cols-2"
      aria-label={existing ? `Edit ${existing.name}` : "New assistant"}
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <div>
        <label className="label" htmlFor={`${prefix}-name`}>Name</label>
        <input id={`${prefix}-name`} className="field" required maxLength={200} value={draft.name} onChange={set("name")} />
      </div>
      <div>
        <label className="label" htmlFor={`${prefix}-model`}>Model</label>
        <select id={`${prefix}-model`} className="field" value={draft.model} onChange={set("model")}>
          {!existing && <option value="">Default</option>}
          {existing && !models.data?.items.some((m) => m.model === draft.model) && <option value={draft.model}>{draft.model}</option>}
          {models.data?.items.map((m) => (
            <option key={m.model} value={m.model}>
              {m.model} — in {formatMoney(m.input_micros_per_mtok, m.currency)}/M, out {formatMoney(m.output_micros_per_mtok, m.currency)}/M
            </option>
          ))}
        </select>
        <ErrorText error={models.error} />
      </div>
      <div className="sm:col-span-2">
        <label className="label" htmlFor={`${prefix}-prompt`}>System prompt</label>
        <textarea id={`${prefix}-prompt`} className="field" rows={3} value={draft.system_prompt} onChange={set("system_prompt")} />
      </div>
      <div>
        <label className="label" htmlFor={`${prefix}-temperature`}>Temperature</label>
        <input id={`${prefix}-temperature`} className="field" type="number" min={0} max={2} step={0.1} value={draft.temperature} onChange={set("temperature")} />
      </div>
      <div>
        <label className="label" htmlFor={`${prefix}-max-tokens`}>Max tokens</label>
        <input id={`${prefix}-max-tokens`} className="field" type="number" min={1} max={32000} value={draft.max_tokens} onChange={set("max_tokens")} />
      </div>
      <div>
        <label className="label" htmlFor={`${prefix}-top-k`}>Retrieved passages (top k)</label>
        <input id={`${prefix}-top-k`} className="field" type="number" min={1} max={50} placeholder="default" value={draft.retrieval_top_k} onChange={set("retrieval_top_k")} />
      </div>
      <div>
        <label className="label" htmlFor={`${prefix}-min-score`}>Minimum similarity</label>
        <input id={`${prefix}-min-score`} className="field" type="number" min={-1} max={1} step={0.05} placeholder="default" value={draft.retrieval_min_score} onChange={set("retrieval_min_score")} />
      </div>
      <div className="sm:col-span-2">
        <label className="label" htmlFor={`${prefix}-greeting`}>Greeting (widget and Telegram /start)</label>
        <input id={`${prefix}-greeting`} className="field" maxLength={4096} value={draft.greeting} onChange={set("greeting")} />
      </div>
      <div className="flex items-center gap-2 sm:col-span-2">
        <input id={`${prefix}-streaming`} type="checkbox" checked={draft.telegram_streaming} onChange={set("telegram_streaming")} />
        <label htmlFor={`${prefix}-streaming`} className="text-sm">Stream Telegram answers (edit the message while it is written)</label>
      </div>
      <div className="sm:col-span-2">
        <ErrorText error={save.error} />
        <button type="submit" className="btn mt-2" disabled={save.isPending}>
          {existing ? "Save changes" : "Create assistant"}
        </button>
      </div>
    </form>
  );
}

function Operators({ assistant }: { assistant: Assistant }) {
  const queryClient = useQueryClient();
  const [email, setEmail] = useState("");
  const operators = useQuery({
    queryKey: keys.operators(assistant.id),
    queryFn: () => api<Page<Operator>>(`/api/assistants/${assistant.id}/operators`),
  });
  const invite = useMutation({
    mutationFn: () => api(`/api/assistants/${assistant.id}/operator-invitations`, { method: "POST", body: { email } }),
    onSuccess: () => setEmail(""),
  });
  const remove = useMutation({
    mutationFn: (userId: string) => api(`/api/assistants/${assistant.id}/operators/${userId}`, { method: "DELETE" }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.operators(assistant.id) }),
  });
  return (
    <section aria-labelledby={`ops-${assistant.id}`} className="mt-4 border-t border-slate-200 pt-4">
      <h3 id={`ops-${assistant.id}`} className="font-medium">Operators</h3>
      {operators.isPending ? (
        <Loading />
      ) : operators.error ? (
        <ErrorText error={operators.error} />
      ) : operators.data.items.length === 0 ? (
        <p className="text-sm text-slate-500">No operators assigned.</p>
      ) : (
        <ul className="text-sm">
          {operators.data.items.map((op) => (
            <li key={op.id} className="flex items-center justify-between gap-2 py-1">
              <span>{op.name ?? op.email} ({op.email})</span>
              <ConfirmButton label="Remove" confirmLabel={`Remove ${op.email}`} onConfirm={() => remove.mutate(op.id)} />
            </li>
          ))}
        </ul>
      )}
      <ErrorText error={remove.error} />
      <form
        className="mt-2 flex flex-wrap items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          invite.mutate();
        }}
      >
        <div className="flex-1">
          <label className="label" htmlFor={`invite-${assistant.id}`}>Invite an operator by email</label>
          <input id={`invite-${assistant.id}`} type="email" required className="field" value={email} onChange={(e) => setEmail(e.target.value)} />
        </div>
        <button type="submit" className="btn-secondary" disabled={invite.isPending}>Invite</button>
      </form>
      {invite.isSuccess && <p role="status" className="mt-1 text-sm text-green-700">Invitation sent if that operator exists.</p>}
      <ErrorText error={invite.error} />
    </section>
  );
}

function AssistantsPage() {
  const assistants = useAssistants();
  const queryClient = useQueryClient();
  const { select } = useSelectedAssistant();
  const [editing, setEditing] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const remove = useMutation({
    mutationFn: (id: string) => api(`/api/assistants/${id}`, { method: "DELETE" }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.assistants }),
  });
  return (
    <>
      <PageTitle title="Assistants">
        <button type="button" className="btn" onClick={() => setCreating((c) => !c)} aria-expanded={creating}>
          New assistant
        </button>
      </PageTitle>
      {creating && (
        <section className="card mb-4">
          <h2 className="mb-3 font-medium">New assistant</h2>
          <AssistantForm
            initial={EMPTY}
            onSaved={(a) => {
              setCreating(false);
              select(a.id);
            }}
          />
        </section>
      )}
      <ErrorText error={remove.error} />
      {assistants.isPending ? (
        <Loading what="Loading assistants" />
      ) : assistants.error ? (
        <ErrorText error={assistants.error} />
      ) : assistants.data.items.length === 0 ? (
        <Empty>No assistants yet. Create one to start.</Empty>
      ) : (
        <ul className="space-y-3">
          {assistants.data.items.map((a) => (
            <li key={a.id} className="card">
              <div className="flex flex-wrap items-start justify-between gap-2">
                <div>
                  <h2 className="font-medium">{a.name}</h2>
                  <p className="text-sm text-slate-500">
                    {a.model} · created {formatDate(a.created_at)}
                  </p>
                </div>
                <div className="flex gap-2">
                  <button
                    type="button"
                    className="btn-secondary"
                    aria-expanded={editing === a.id}
                    onClick={() => setEditing(editing === a.id ? null : a.id)}
                  >
                    Edit
                  </button>
                  <ConfirmButton label="Delete" confirmLabel={`Delete ${a.name}`} onConfirm={() => remove.mutate(a.id)} />
                </div>
              </div>
              {editing === a.id && (
                <div className="mt-4">
                  <AssistantForm initial={toDraft(a)} existing={a} onSaved={() => setEditing(null)} />
                  <Operators assistant={a} />
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

export default function Home() {
  return (
    <AppShell>
      <AssistantsPage />
    </AppShell>
  );
}
