"use client";

import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { AppShell } from "@/components/AppShell";
import { UsageCharts } from "@/components/UsageCharts";
import { Empty, ErrorText, Loading, PageTitle } from "@/components/ui";
import { api } from "@/lib/api";
import { keys, useAssistants } from "@/lib/queries";
import type { UsageRow } from "@/lib/types";

function isoDay(offsetDays: number): string {
  return new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
}

function Analytics() {
  const assistants = useAssistants();
  const [assistantId, setAssistantId] = useState("");
  const [granularity, setGranularity] = useState<"day" | "hour">("day");
  const [from, setFrom] = useState(isoDay(-29));
  const [to, setTo] = useState(isoDay(0));
  const params = {
    assistant_id: assistantId,
    granularity,
    from: `${from}T00:00:00Z`,
    to: `${to}T23:59:59Z`,
  };
  const usage = useQuery({
    queryKey: keys.usage(params),
    queryFn: () => api<{ items: UsageRow[] }>("/api/analytics/usage", { query: params }),
  });
  return (
    <>
      <PageTitle title="Analytics" />
      <form className="card mb-4 grid gap-3 sm:grid-cols-4" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <div>
          <label htmlFor="an-assistant" className="label">Assistant</label>
          <select id="an-assistant" className="field" value={assistantId} onChange={(e) => setAssistantId(e.target.value)}>
            <option value="">All assistants</option>
            {assistants.data?.items.map((a) => (
              <option key={a.id} value={a.id}>{a.name}</option>
            ))}
          </select>
        </div>
        <div>
          <label htmlFor="an-granularity" className="label">Per</label>
          <select id="an-granularity" className="field" value={granularity} onChange={(e) => setGranularity(e.target.value as "day" | "hour")}>
            <option value="day">Day</option>
            <option value="hour">Hour</option>
          </select>
        </div>
        <div>
          <label htmlFor="an-from" className="label">From</label>
          <input id="an-from" type="date" className="field" value={from} max={to} onChange={(e) => setFrom(e.target.value)} />
        </div>
        <div>
          <label htmlFor="an-to" className="label">To</label>
          <input id="an-to" type="date" className="field" value={to} min={from} onChange={(e) => setTo(e.target.value)} />
        </div>
      </form>
      {usage.isPending ? (
        <Loading what="Loading usage" />
      ) : usage.error ? (
        <ErrorText error={usage.error} />
      ) : usage.data.items.length === 0 ? (
        <Empty>No usage in this period yet.</Empty>
      ) : (
        <UsageCharts rows={usage.data.items} granularity={granularity} />
      )}
    </>
  );
}

export default function AnalyticsPage() {
  return (
    <AppShell>
      <Analytics />
    </AppShell>
  );
}
