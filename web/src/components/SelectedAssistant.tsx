"use client";

import { createContext, useCallback, useContext, useEffect, useState } from "react";

const STORAGE_KEY = "chatai.console.assistant";
type Selected = { assistantId: string | null; select: (id: string | null) => void };
const Context = createContext<Selected>({ assistantId: null, select: () => {} });

/** The assistant the per-assistant pages (playground, knowledge, channels, analytics) work on. */
export function SelectedAssistantProvider({ children }: { children: React.ReactNode }) {
  const [assistantId, setAssistantId] = useState<string | null>(null);
  useEffect(() => {
    setAssistantId(window.localStorage.getItem(STORAGE_KEY));
  }, []);
  const select = useCallback((id: string | null) => {
    setAssistantId(id);
    if (id) window.localStorage.setItem(STORAGE_KEY, id);
    else window.localStorage.removeItem(STORAGE_KEY);
  }, []);
  return <Context.Provider value={{ assistantId, select }}>{children}</Context.Provider>;
}

export function useSelectedAssistant(): Selected {
  return useContext(Context);
}
