"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { AppShell } from "@/components/AppShell";
import { UsageCharts } from "@/components/UsageCharts";
import { Empty, ErrorText, Loading, PageTitle, formatDate } from "@/components/ui";
import { api, type Page } from "@/lib/api";
import {
  formatMoney,
  type AdminUser,
  type AuditEvent,
  type Price,
  type QueueHealth,
  type ReconciliationRow,
  type Role,
  type UsageRow,
} from "@/lib/types";

function Section({ id, title, children }: { id: string; title: string; children: React.ReactNode }) {
  return (
    <section aria-labelledby={id} className="card mb-4 overflow-x-auto">
      <h2 id={id} className="mb-2 font-medium">{title}</h2>
      {children}
    </section>
  );
}

function Users() {
  const queryClient = useQueryClient();
  const [q, setQ] = useState("");
  const users = useQuery({
    queryKey: ["admin-users", q],
    queryFn: () => api<Page<AdminUser>>("/api/admin/users", { query: { q, limit: 50 } }),
  });
  const update = useMutation({
    mutationFn: ({ id, patch }: { id: string; patch: Partial<Pick<AdminUser, "role" | "is_active">> }) =>
      api<AdminUser>(`/api/admin/users/${id}`, { method: "PATCH", body: patch }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["admin-users"] }),
  });
  return (
    <Section id="users-title" title="Users">
      <label htmlFor="user-search" className="label">Search by email or name</label>
      <input id="user-search" type="search" className="field mb-2 max-w-sm" value={q} onChange={(e) => setQ(e.target.value)} />
      <ErrorText error={update.error} />
      {users.isPending ? (
        <Loading />
      ) : users.error ? (
        <ErrorText error={users.error} />
      ) : users.data.items.length === 0 ? (
        <Empty>No users match.</Empty>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              <th scope="col">Active</th>
              <th scope="col">Joined</th>
            </tr>
          </thead>
          <tbody>
            {users.data.items.map((u) => (
              <tr key={u.id}>
                <td>{u.email}{u.name ? ` (${u.name})` : ""}</td>
                <td>
                  <label className="sr-only" htmlFor={`role-${u.id}`}>Role of {u.email}</label>
                  <select id={`role-${u.id}`} className="field" value={u.role} onChange={(e) => update.mutate({ id: u.id, patch: { role: e.target.value as Role } })}>
                    <option value="user">user</option>
                    <option value="operator">operator</option>
                    <option value="admin">admin</option>
                  </select>
                </td>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`${u.email} is active`}
                    checked={u.is_active}
                    onChange={(e) => update.mutate({ id: u.id, patch: { is_active: e.target.checked } })}
                  />
                </td>
                <td>{formatDate(u.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function Prices() {
  const queryClient = useQueryClient();
  const prices = useQuery({ queryKey: ["admin-prices"], queryFn: () => api<{ items: Price[] }>("/api/admin/prices") });
  const [model, setModel] = useState("");
  const [input, setInput] = useState("");
  const [output, setOutput] = useState("");
  const [kind, setKind] = useState<"chat" | "embedding">("chat");
  const save = useMutation({
    mutationFn: () =>
      api<Price>(`/api/admin/prices/${encodeURIComponent(model)}`, {
        method: "PUT",
        body: { input_micros_per_mtok: Math.round(Number(input) * 1_000_000), output_micros_per_mtok: Math.round(Number(output) * 1_000_000), kind },
      }),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["admin-prices"] });
      void queryClient.invalidateQueries({ queryKey: ["admin-audit"] });
      void queryClient.invalidateQueries({ queryKey: ["models"] });
    },
  });
  const edit = (p: Price) => {
    setModel(p.model);
    setInput(String(p.input_micros_per_mtok / 1_000_000));
    setOutput(String(p.output_micros_per_mtok / 1_000_000));
    setKind(p.kind);
  };
  return (
    <Section id="prices-title" title="Model prices (per million tokens)">
      {prices.isPending ? (
        <Loading />
      ) : prices.error ? (
        <ErrorText error={prices.error} />
      ) : (
        <table className="table mb-3">
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Kind</th>
              <th scope="col" className="text-right">Input</th>
              <th scope="col" className="text-right">Output</th>
              <th scope="col"><span className="sr-only">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            {prices.data.items.map((p) => (
              <tr key={p.model} data-model={p.model}>
                <td className="font-mono">{p.model}</td>
                <td>{p.kind}</td>
                <td className="text-right">{formatMoney(p.input_micros_per_mtok, p.currency)}</td>
                <td className="text-right">{formatMoney(p.output_micros_per_mtok, p.currency)}</td>
                <td>
                  <button type="button" className="btn-secondary" onClick={() => edit(p)} aria-label={`Edit price of ${p.model}`}>Edit</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form
        className="grid gap-2 sm:grid-cols-5 sm:items-end"
        aria-label="Set a price"
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate();
        }}
      >
        <div>
          <label htmlFor="price-model" className="label">Model</label>
          <input id="price-model" className="field" required value={model} onChange={(e) => setModel(e.target.value)} />
        </div>
        <div>
          <label htmlFor="price-kind" className="label">Kind</label>
          <select id="price-kind" className="field" value={kind} onChange={(e) => setKind(e.target.value as "chat" | "embedding")}>
            <option value="chat">chat</option>
            <option value="embedding">embedding</option>
          </select>
        </div>
        <div>
          <label htmlFor="price-input" className="label">Input (USD)</label>
          <input id="price-input" type="number" min={0} step="any" required className="field" value={input} onChange={(e) => setInput(e.target.value)} />
        </div>
        <div>
          <label htmlFor="price-output" className="label">Output (USD)</label>
          <input id="price-output" type="number" min={0} step="any" required className="field" value={output} onChange={(e) => setOutput(e.target.value)} />
        </div>
        <button type="submit" className="btn" disabled={save.isPending}>Save price</button>
      </form>
      <ErrorText error={save.error} />
      {save.isSuccess && <p role="status" className="mt-1 text-sm text-green-700">Price saved.</p>}
    </Section>
  );
}

function Audit() {
  const audit = useQuery({ queryKey: ["admin-audit"], queryFn: () => api<Page<AuditEvent>>("/api/admin/audit", { query: { limit: 50 } }) });
  return (
    <Section id="audit-title" title="Audit log">
      {audit.isPending ? (
        <Loading />
      ) : audit.error ? (
        <ErrorText error={audit.error} />
      ) : audit.data.items.length === 0 ? (
        <Empty>No events yet.</Empty>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Action</th>
              <th scope="col">Subject</th>
              <th scope="col">IP</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody data-testid="audit-rows">
            {audit.data.items.map((e) => (
              <tr key={e.id}>
                <td className="whitespace-nowrap">{formatDate(e.created_at)}</td>
                <td className="font-mono">{e.action}</td>
                <td className="font-mono">{e.subject ?? ""}</td>
                <td>{e.ip ?? ""}</td>
                <td className="max-w-72 truncate font-mono text-xs">{e.details ? JSON.stringify(e.details) : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function Queues() {
  const queues = useQuery({
    queryKey: ["admin-queues"],
    queryFn: () => api<{ items: QueueHealth[]; checked_at: string | null }>("/api/admin/queues"),
    refetchInterval: 15_000,
  });
  return (
    <Section id="queues-title" title="Queues">
      {queues.isPending ? (
        <Loading />
      ) : queues.error ? (
        <ErrorText error={queues.error} />
      ) : queues.data.items.length === 0 ? (
        <Empty>No canary report yet.</Empty>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Queue</th>
              <th scope="col">Consuming</th>
              <th scope="col">Canary latency</th>
              <th scope="col">Last sent</th>
              <th scope="col">Last consumed</th>
            </tr>
          </thead>
          <tbody>
            {queues.data.items.map((q) => (
              <tr key={q.queue}>
                <td className="font-mono">{q.queue}</td>
                <td className={q.consuming ? "text-green-700" : "text-red-700"}>{q.consuming ? "yes" : "no"}</td>
                <td>{q.latency_seconds === null ? "—" : `${q.latency_seconds.toFixed(2)} s`}</td>
                <td>{formatDate(q.last_sent_at)}</td>
                <td>{formatDate(q.last_consumed_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function Reconciliation() {
  const rows = useQuery({ queryKey: ["admin-recon"], queryFn: () => api<{ items: ReconciliationRow[] }>("/api/admin/reconciliation") });
  return (
    <Section id="recon-title" title="Reconciliation">
      {rows.isPending ? (
        <Loading />
      ) : rows.error ? (
        <ErrorText error={rows.error} />
      ) : rows.data.items.length === 0 ? (
        <p className="text-sm text-green-700">Every balance matches its ledger.</p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Owner</th>
              <th scope="col">Balance / ledger</th>
              <th scope="col">Held / ledger</th>
              <th scope="col">Found</th>
            </tr>
          </thead>
          <tbody>
            {rows.data.items.map((r) => (
              <tr key={`${r.run_id}-${r.owner_id}`}>
                <td className="font-mono text-xs">{r.owner_id}</td>
                <td>{formatMoney(r.balance_micros)} / {formatMoney(r.ledger_balance_micros)}</td>
                <td>{formatMoney(r.held_micros)} / {formatMoney(r.ledger_held_micros)}</td>
                <td>{formatDate(r.found_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function PlatformUsage() {
  const usage = useQuery({
    queryKey: ["admin-usage"],
    queryFn: () => api<{ items: UsageRow[] }>("/api/analytics/usage", { query: { platform: true, granularity: "day" } }),
  });
  return (
    <Section id="platform-title" title="Platform analytics (30 days)">
      {usage.isPending ? (
        <Loading />
      ) : usage.error ? (
        <ErrorText error={usage.error} />
      ) : usage.data.items.length === 0 ? (
        <Empty>No usage yet.</Empty>
      ) : (
        <UsageCharts rows={usage.data.items} granularity="day" />
      )}
    </Section>
  );
}

export default function AdminPage() {
  return (
    <AppShell adminOnly>
      <PageTitle title="Admin" />
      <Users />
      <Prices />
      <Audit />
      <Queues />
      <Reconciliation />
      <PlatformUsage />
    </AppShell>
  );
}
