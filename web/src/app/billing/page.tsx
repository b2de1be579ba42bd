"use client";

import { useMutation, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { AppShell } from "@/components/AppShell";
import { Empty, ErrorText, Loading, PageTitle, formatDate } from "@/components/ui";
import { api, type Page } from "@/lib/api";
import { keys, useAssistants, useBalance } from "@/lib/queries";
import { formatMoney, type Transaction, type UsageRow } from "@/lib/types";

function TopUp() {
  const [amount, setAmount] = useState("10");
  const checkout = useMutation({
    mutationFn: () =>
      api<{ id: string; url: string }>("/api/balance/checkout", {
        method: "POST",
        body: { amount_micros: Math.round(Number(amount) * 100) * 10_000 },
      }),
    onSuccess: ({ url }) => window.location.assign(url),
  });
  return (
    <form
      className="card"
      aria-labelledby="topup-title"
      onSubmit={(e) => {
        e.preventDefault();
        checkout.mutate();
      }}
    >
      <h2 id="topup-title" className="mb-2 font-medium">Top up</h2>
      <label htmlFor="topup-amount" className="label">Amount (USD, at least 0.50)</label>
      <div className="flex gap-2">
        <input id="topup-amount" type="number" min={0.5} step={0.01} required className="field" value={amount} onChange={(e) => setAmount(e.target.value)} />
        <button type="submit" className="btn mt-1 shrink-0" disabled={checkout.isPending}>
          {checkout.isPending ? "Opening checkout…" : "Pay with Stripe"}
        </button>
      </div>
      <ErrorText error={checkout.error} />
    </form>
  );
}

function Spending() {
  const assistants = useAssistants();
  const usage = useQuery({
    queryKey: keys.usage({ spending: "30d" }),
    queryFn: () => api<{ items: UsageRow[] }>("/api/analytics/usage", { query: { granularity: "day" } }),
  });
  if (usage.isPending) return <Loading what="Loading spending" />;
  if (usage.error) return <ErrorText error={usage.error} />;
  const totals = new Map<string, number>();
  for (const row of usage.data.items) {
    if (row.assistant_id) totals.set(row.assistant_id, (totals.get(row.assistant_id) ?? 0) + row.cost_micros);
  }
  if (totals.size === 0) return <Empty>No spending in the last 30 days.</Empty>;
  return (
    <table className="table">
      <thead>
        <tr>
          <th scope="col">Assistant</th>
          <th scope="col" className="text-right">Last 30 days</th>
        </tr>
      </thead>
      <tbody>
        {[...totals.entries()].map(([id, micros]) => (
          <tr key={id}>
            <td>{assistants.data?.items.find((a) => a.id === id)?.name ?? id}</td>
            <td className="text-right">{formatMoney(micros)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Billing() {
  const balance = useBalance();
  const transactions = useQuery({
    queryKey: keys.transactions,
    queryFn: () => api<Page<Transaction>>("/api/balance/transactions", { query: { limit: 100 } }),
  });
  return (
    <>
      <PageTitle title="Billing" />
      <div className="mb-4 grid gap-4 md:grid-cols-2">
        <section aria-labelledby="balance-title" className="card">
          <h2 id="balance-title" className="font-medium">Balance</h2>
          {balance.isPending ? (
            <Loading />
          ) : balance.error ? (
            <ErrorText error={balance.error} />
          ) : (
            <>
              <p className="mt-2 text-3xl font-semibold" data-testid="balance">{formatMoney(balance.data.balance_micros, balance.data.currency)}</p>
              <p className="text-sm text-slate-500">
                {formatMoney(balance.data.available_micros, balance.data.currency)} available ·{" "}
                {formatMoney(balance.data.held_micros, balance.data.currency)} held by replies and uploads in progress
              </p>
            </>
          )}
        </section>
        <TopUp />
      </div>
      <section aria-labelledby="spend-title" className="card mb-4 overflow-x-auto">
        <h2 id="spend-title" className="mb-2 font-medium">Spending per assistant</h2>
        <Spending />
      </section>
      <section aria-labelledby="tx-title" className="card overflow-x-auto">
        <h2 id="tx-title" className="mb-2 font-medium">Transactions</h2>
        {transactions.isPending ? (
          <Loading />
        ) : transactions.error ? (
          <ErrorText error={transactions.error} />
        ) : transactions.data.items.length === 0 ? (
          <Empty>No transactions yet.</Empty>
        ) : (
          <table className="table">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Kind</th>
                <th scope="col" className="text-right">Amount</th>
                <th scope="col" className="text-right">Balance after</th>
                <th scope="col">Reference</th>
              </tr>
            </thead>
            <tbody>
              {transactions.data.items.map((t) => (
                <tr key={t.id} data-kind={t.kind}>
                  <td>{formatDate(t.created_at)}</td>
                  <td>{t.kind}</td>
                  <td className="text-right">{formatMoney(t.amount_micros)}</td>
                  <td className="text-right">{formatMoney(t.balance_after_micros)}</td>
                  <td className="max-w-48 truncate">{t.reference ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}

export default function BillingPage() {
  return (
    <AppShell>
      <Billing />
    </AppShell>
  );
}
