"use client";

import { useQueryClient } from "@tanstack/react-query";
import { createContext, useContext, useEffect, useRef, useState } from "react";
import { API_BASE, currentAccessToken, refreshSession } from "@/lib/api";
import { keys, useMe } from "@/lib/queries";
import type { Balance, LiveEvent } from "@/lib/types";
import { LiveSocket, type ConnectionState } from "@/lib/ws";

type LiveContext = { socket: LiveSocket | null; state: ConnectionState };
const Context = createContext<LiveContext>({ socket: null, state: "closed" });

function socketUrl(): string {
  const base = API_BASE || window.location.origin;
  return `${base.replace(/^http/, "ws")}/api/ws`;
}

/** Keeps one WebSocket while someone is signed in and feeds the `user` topic into the query cache. */
export function LiveProvider({ children }: { children: React.ReactNode }) {
  const queryClient = useQueryClient();
  const me = useMe();
  const userId = me.data?.id ?? null;
  const [socket, setSocket] = useState<LiveSocket | null>(null);
  const [state, setState] = useState<ConnectionState>("closed");
  const wasOpen = useRef(false);

  useEffect(() => {
    if (!userId) return;
    const live = new LiveSocket({
      url: socketUrl(),
      getToken: async (fresh) => (fresh ? (await refreshSession()).access_token : currentAccessToken()),
    });
    const offState = live.onState((next) => {
      setState(next);
      if (next === "open") {
        // After a drop, what happened meanwhile beyond the replay window comes from REST.
        if (wasOpen.current) void queryClient.invalidateQueries();
        wasOpen.current = true;
      }
    });
    const offUser = live.subscribe("user", (event: LiveEvent) => {
      if (event.type === "document.status") {
        void queryClient.invalidateQueries({ queryKey: ["documents"] });
      } else if (event.type === "balance.changed") {
        queryClient.setQueryData<Balance>(keys.balance, (old) =>
          old ? { ...old, ...(event.data as Partial<Balance>) } : old,
        );
        void queryClient.invalidateQueries({ queryKey: keys.transactions });
      } else if (event.type === "bot.status") {
        void queryClient.invalidateQueries({ queryKey: keys.bots });
      }
    });
    live.start();
    setSocket(live);
    return () => {
      offUser();
      offState();
      live.stop();
      setSocket(null);
      wasOpen.current = false;
    };
  }, [userId, queryClient]);

  return <Context.Provider value={{ socket, state }}>{children}</Context.Provider>;
}

export function useLive(): LiveContext {
  return useContext(Context);
}

/** Calls `handler` for each event of `topic` while the component is mounted. */
export function useTopic(topic: string | null, handler: (event: LiveEvent) => void, from: string | null = null): void {
  const { socket } = useLive();
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(() => {
    if (!socket || !topic) return;
    return socket.subscribe(topic, (event) => latest.current(event), from);
  }, [socket, topic, from]);
}
