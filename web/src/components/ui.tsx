"use client";

import { useEffect, useId, useRef, useState } from "react";
import { readableMessage } from "@/lib/errors";
import { useAssistants } from "@/lib/queries";
import { useSelectedAssistant } from "./SelectedAssistant";

export function ErrorText({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p role="alert" className="mt-2 rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">
      {readableMessage(error)}
    </p>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p role="status" aria-live="polite" className="py-4 text-sm text-slate-500">
      {what}…
    </p>
  );
}

export function Empty({ children }: { children: React.ReactNode }) {
  return <p className="rounded-md border border-dashed border-slate-300 p-6 text-center text-sm text-slate-500">{children}</p>;
}

export function PageTitle({ title, children }: { title: string; children?: React.ReactNode }) {
  return (
    <div className="mb-4 flex flex-wrap items-center justify-between gap-2">
      <h1 className="text-xl font-semibold">{title}</h1>
      {children}
    </div>
  );
}

/** A select of the caller's assistants bound to the selected one; picks the first if none is. */
export function AssistantPicker({ label = "Assistant" }: { label?: string }) {
  const id = useId();
  const { assistantId, select } = useSelectedAssistant();
  const assistants = useAssistants();
  const items = assistants.data?.items;
  useEffect(() => {
    if (!items) return;
    if (items.length === 0) {
      if (assistantId) select(null);
    } else if (!items.some((a) => a.id === assistantId)) {
      select(items[0].id);
    }
  }, [items, assistantId, select]);
  if (assistants.isPending) return <Loading what="Loading assistants" />;
  if (assistants.error) return <ErrorText error={assistants.error} />;
  if (!items || items.length === 0) return null;
  return (
    <div className="min-w-48">
      <label htmlFor={id} className="label">
        {label}
      </label>
      <select id={id} className="field" value={assistantId ?? ""} onChange={(e) => select(e.target.value)}>
        {items.map((a) => (
          <option key={a.id} value={a.id}>
            {a.name}
          </option>
        ))}
      </select>
    </div>
  );
}

/** A button that asks once more before doing something that cannot be undone. */
export function ConfirmButton({
  label,
  confirmLabel,
  onConfirm,
  disabled,
}: {
  label: string;
  confirmLabel: string;
  onConfirm: () => void;
  disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const confirmRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button type="button" className="btn-secondary" onClick={() => setAsking(true)} disabled={disabled}>
        {label}
      </button>
    );
  }
  return (
    <span role="group" aria-label={confirmLabel} className="inline-flex gap-2">
      <button
        ref={confirmRef}
        type="button"
        className="btn-danger"
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
      >
        {confirmLabel}
      </button>
      <button type="button" className="btn-secondary" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "—";
  return new Date(iso).toLocaleString();
}
