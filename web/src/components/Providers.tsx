"use client";

import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useState } from "react";
import { ApiError } from "@/lib/errors";
import { LiveProvider } from "./LiveProvider";
import { SelectedAssistantProvider } from "./SelectedAssistant";

function shouldRetry(failureCount: number, error: unknown): boolean {
  // Client errors will not change on retry; network trouble and 5xx may.
  if (error instanceof ApiError && error.status >= 400 && error.status < 500) return false;
  return failureCount < 2;
}

export function Providers({ children }: { children: React.ReactNode }) {
  const [client] = useState(
    () =>
      new QueryClient({
        defaultOptions: {
          queries: { retry: shouldRetry, staleTime: 10_000, refetchOnWindowFocus: false },
          mutations: { retry: false },
        },
      }),
  );
  return (
    <QueryClientProvider client={client}>
      <LiveProvider>
        <SelectedAssistantProvider>{children}</SelectedAssistantProvider>
      </LiveProvider>
    </QueryClientProvider>
  );
}
