/** Query keys and the reads several pages share. */
import { useQuery } from "@tanstack/react-query";
import { api, type Page } from "./api";
import type { Assistant, Balance, ChatModel, User } from "./types";

export const keys = {
  me: ["me"] as const,
  assistants: ["assistants"] as const,
  models: ["models"] as const,
  documents: (assistantId: string) => ["documents", assistantId] as const,
  dialogs: (assistantId: string | null) => ["dialogs", assistantId] as const,
  messages: (dialogId: string) => ["messages", dialogId] as const,
  bots: ["bots"] as const,
  balance: ["balance"] as const,
  transactions: ["transactions"] as const,
  usage: (params: Record<string, string>) => ["usage", params] as const,
  operators: (assistantId: string) => ["operators", assistantId] as const,
};

export function useMe() {
  return useQuery({ queryKey: keys.me, queryFn: () => api<User>("/api/users/me"), retry: false, staleTime: 60_000 });
}

export function useAssistants(enabled = true) {
  return useQuery({
    queryKey: keys.assistants,
    queryFn: () => api<Page<Assistant>>("/api/assistants", { query: { limit: 200 } }),
    enabled,
  });
}

export function useModels() {
  return useQuery({ queryKey: keys.models, queryFn: () => api<{ items: ChatModel[] }>("/api/models"), staleTime: 300_000 });
}

export function useBalance() {
  return useQuery({ queryKey: keys.balance, queryFn: () => api<Balance>("/api/balance") });
}
