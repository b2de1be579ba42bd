/** Response shapes, as the API's schemas (api/schemas.py and friends) declare them. */

export type Role = "user" | "operator" | "admin";
export type User = { id: string; email: string; name: string | null; role: Role; created_at: string };

export type Assistant = {
  id: string;
  name: string;
  system_prompt: string;
  model: string;
  temperature: number;
  max_tokens: number;
  llm_provider: string | null;
  retrieval_top_k: number | null;
  retrieval_min_score: number | null;
  public_key: string;
  widget_allowed_origins: string[];
  greeting: string | null;
  telegram_streaming: boolean;
  widget_show_citations: boolean;
  created_at: string;
};

export type ChatModel = { model: string; input_micros_per_mtok: number; output_micros_per_mtok: number; currency: string };

export type Dialog = {
  id: string;
  assistant_id: string;
  title: string | null;
  status: "active" | "closed";
  source: "app" | "widget" | "telegram" | "api";
  via_widget?: boolean;
  operator_id: string | null;
  created_at: string;
};

export type Citation = { document_id: string; chunk_id: string; filename: string; score: number };

export type Message = {
  id: string;
  dialog_id: string;
  role: "user" | "assistant" | "system";
  content: string;
  status: string;
  error: { code: string; message: string } | null;
  usage: { prompt_tokens: number | null; completion_tokens: number | null };
  cost_micros: number | null;
  citations: Citation[];
  created_at: string;
  completed_at: string | null;
  author_id: string | null;
};

export type PostedMessage = {
  message: { id: string; role: "user"; content: string; created_at: string };
  reply: { id: string; role: "assistant"; status: string } | null;
};

export type DocumentStatus = "queued" | "parsing" | "embedding" | "ready" | "failed";
export type KnowledgeDocument = {
  id: string;
  assistant_id: string;
  filename: string;
  content_type: string;
  size_bytes: number;
  status: DocumentStatus;
  progress: number;
  chunk_count: number;
  error: string | null;
  error_code: string | null;
  created_at: string;
};
export type SearchHit = { document_id: string; chunk_id: string; filename: string; text: string; score: number; similarity: number };

export type Bot = {
  id: string;
  assistant_id: string;
  username: string;
  status: "active" | "disabled";
  webhook_url: string | null;
  disabled_reason: string | null;
  paused_until: string | null;
  pending_update_count: number;
  last_webhook_error: string | null;
  created_at: string;
};

export type Balance = { balance_micros: number; currency: string; held_micros: number; available_micros: number };
export type Transaction = {
  id: string;
  kind: "topup" | "charge" | "refund" | "adjustment";
  amount_micros: number;
  balance_after_micros: number;
  reference: string | null;
  created_at: string;
};

export type UsageRow = {
  period_start: string;
  assistant_id: string | null;
  messages: number;
  dialogs: number;
  end_users: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_micros: number;
  replies: number;
  failed_replies: number;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
};

export type AdminUser = User & { is_active: boolean };
export type Price = ChatModel & { kind: "chat" | "embedding" };
export type AuditEvent = {
  id: string;
  actor_id: string | null;
  action: string;
  subject: string | null;
  ip: string | null;
  details: unknown;
  created_at: string;
};
export type QueueHealth = {
  queue: string;
  consuming: boolean;
  last_sent_at: string | null;
  last_consumed_at: string | null;
  latency_seconds: number | null;
};
export type ReconciliationRow = {
  run_id: string;
  owner_id: string;
  balance_micros: number;
  ledger_balance_micros: number;
  held_micros: number;
  ledger_held_micros: number;
  found_at: string;
};
export type Operator = { id: string; email: string; name: string | null; created_at: string };

/** A WebSocket event, as `GET /api/ws` sends it. */
export type LiveEvent = { id: string; topic: string; type: string; data: Record<string, unknown> };

export function formatMoney(micros: number | null | undefined, currency = "usd"): string {
  if (micros === null || micros === undefined) return "—";
  const amount = micros / 1_000_000;
  const digits = Math.abs(amount) < 0.01 && amount !== 0 ? 6 : 2;
  return `${amount.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: digits })} ${currency.toUpperCase()}`;
}
