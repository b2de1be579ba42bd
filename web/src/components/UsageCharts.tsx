"use client";

import { Bar, BarChart, CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import type { UsageRow } from "@/lib/types";

type Point = Record<string, number | string>;

/** Sums the rows of each period (one row per assistant and period) into one point per period. */
export function byPeriod(rows: UsageRow[], granularity: "day" | "hour"): Point[] {
  const points = new Map<string, Point>();
  const fields = ["messages", "dialogs", "end_users", "prompt_tokens", "completion_tokens", "replies", "failed_replies"] as const;
  for (const row of rows) {
    const at = new Date(row.period_start);
    const label = granularity === "day" ? at.toISOString().slice(0, 10) : `${at.toISOString().slice(5, 13).replace("T", " ")}h`;
    const point = points.get(row.period_start) ?? { period: label, cost: 0, p50: 0, p95: 0 };
    for (const field of fields) point[field] = Number(point[field] ?? 0) + row[field];
    point.cost = Number(point.cost) + row.cost_micros / 1_000_000;
    // Latency does not add up across assistants: show the slowest.
    point.p50 = Math.max(Number(point.p50), row.latency_p50_ms ?? 0);
    point.p95 = Math.max(Number(point.p95), row.latency_p95_ms ?? 0);
    points.set(row.period_start, point);
  }
  return [...points.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, p]) => p);
}

function Chart({ title, data, series, kind = "bar" }: { title: string; data: Point[]; series: { key: string; name: string; color: string }[]; kind?: "bar" | "line" }) {
  return (
    <figure className="card" aria-label={title}>
      <figcaption className="mb-2 text-sm font-medium">{title}</figcaption>
      <div className="h-56">
        <ResponsiveContainer width="100%" height="100%">
          {kind === "bar" ? (
            <BarChart data={data}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis dataKey="period" fontSize={11} />
              <YAxis fontSize={11} allowDecimals={false} />
              <Tooltip />
              <Legend />
              {series.map((s) => (
                <Bar key={s.key} dataKey={s.key} name={s.name} fill={s.color} isAnimationActive={false} />
              ))}
            </BarChart>
          ) : (
            <LineChart data={data}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis dataKey="period" fontSize={11} />
              <YAxis fontSize={11} />
              <Tooltip />
              <Legend />
              {series.map((s) => (
                <Line key={s.key} dataKey={s.key} name={s.name} stroke={s.color} dot isAnimationActive={false} />
              ))}
            </LineChart>
          )}
        </ResponsiveContainer>
      </div>
    </figure>
  );
}

export function UsageCharts({ rows, granularity }: { rows: UsageRow[]; granularity: "day" | "hour" }) {
  const data = byPeriod(rows, granularity);
  return (
    <div className="grid gap-4 lg:grid-cols-2" data-testid="usage-charts">
      <Chart
        title="Activity"
        data={data}
        series={[
          { key: "messages", name: "Messages", color: "#4f46e5" },
          { key: "dialogs", name: "Dialogs", color: "#0ea5e9" },
          { key: "end_users", name: "End users", color: "#10b981" },
        ]}
      />
      <Chart
        title="Tokens"
        data={data}
        series={[
          { key: "prompt_tokens", name: "Prompt", color: "#6366f1" },
          { key: "completion_tokens", name: "Completion", color: "#f59e0b" },
        ]}
      />
      <Chart title="Cost (USD)" kind="line" data={data} series={[{ key: "cost", name: "Cost", color: "#dc2626" }]} />
      <Chart
        title="Reply latency (ms)"
        kind="line"
        data={data}
        series={[
          { key: "p50", name: "p50", color: "#0ea5e9" },
          { key: "p95", name: "p95", color: "#7c3aed" },
        ]}
      />
      <Chart
        title="Replies"
        data={data}
        series={[
          { key: "replies", name: "Replies", color: "#10b981" },
          { key: "failed_replies", name: "Failed", color: "#dc2626" },
        ]}
      />
    </div>
  );
}
