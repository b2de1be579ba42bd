"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { AppShell } from "@/components/AppShell";
import { useSelectedAssistant } from "@/components/SelectedAssistant";
import { AssistantPicker, ConfirmButton, Empty, ErrorText, Loading, PageTitle, formatDate } from "@/components/ui";
import { api, type Page } from "@/lib/api";
import { readableMessage } from "@/lib/errors";
import { keys } from "@/lib/queries";
import type { KnowledgeDocument, SearchHit } from "@/lib/types";

const ACCEPT = ".txt,.md,.markdown,.html,.htm,.pdf,.docx";
const STATUS_STYLE: Record<string, string> = {
  ready: "bg-green-100 text-green-800",
  failed: "bg-red-100 text-red-800",
  queued: "bg-slate-100 text-slate-700",
  parsing: "bg-amber-100 text-amber-800",
  embedding: "bg-amber-100 text-amber-800",
};

type UploadResult = { name: string; error: unknown | null };

function Uploader({ assistantId }: { assistantId: string }) {
  const queryClient = useQueryClient();
  const [dragging, setDragging] = useState(false);
  const [results, setResults] = useState<UploadResult[]>([]);
  const upload = useMutation({
    mutationFn: async (files: File[]) => {
      const outcome: UploadResult[] = [];
      for (const file of files) {
        const form = new FormData();
        form.append("file", file);
        try {
          await api(`/api/assistants/${assistantId}/documents`, { method: "POST", form });
          outcome.push({ name: file.name, error: null });
        } catch (error) {
          outcome.push({ name: file.name, error });
        }
        await queryClient.invalidateQueries({ queryKey: keys.documents(assistantId) });
      }
      return outcome;
    },
    onSuccess: setResults,
  });
  const take = (list: FileList | null) => {
    if (list && list.length > 0) upload.mutate(Array.from(list));
  };
  return (
    <section aria-labelledby="upload-title" className="card mb-4">
      <h2 id="upload-title" className="mb-2 font-medium">Upload documents</h2>
      <label
        htmlFor="files"
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          take(e.dataTransfer.files);
        }}
        className={`flex cursor-pointer flex-col items-center rounded-lg border-2 border-dashed p-6 text-center text-sm ${dragging ? "border-indigo-500 bg-indigo-50" : "border-slate-300"}`}
      >
        <span className="font-medium">Drop files here or choose them</span>
        <span className="text-slate-500">txt, md, html, pdf, docx — several at once</span>
        <input id="files" type="file" multiple accept={ACCEPT} className="sr-only" onChange={(e) => take(e.target.files)} />
      </label>
      {upload.isPending && <Loading what="Uploading" />}
      {results.length > 0 && (
        <ul className="mt-2 text-sm" aria-live="polite">
          {results.map((r, i) => (
            <li key={`${r.name}-${i}`} className={r.error ? "text-red-700" : "text-green-700"}>
              {r.name}: {r.error ? readableMessage(r.error) : "uploaded, indexing"}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function Documents({ assistantId }: { assistantId: string }) {
  const queryClient = useQueryClient();
  const documents = useQuery({
    queryKey: keys.documents(assistantId),
    queryFn: () => api<Page<KnowledgeDocument>>(`/api/assistants/${assistantId}/documents`, { query: { limit: 200 } }),
    // document.status events refresh this list; the interval covers a lost connection.
    refetchInterval: (query) =>
      query.state.data?.items.some((d) => d.status !== "ready" && d.status !== "failed") ? 5000 : false,
  });
  const remove = useMutation({
    mutationFn: (id: string) => api(`/api/documents/${id}`, { method: "DELETE" }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.documents(assistantId) }),
  });
  if (documents.isPending) return <Loading what="Loading documents" />;
  if (documents.error) return <ErrorText error={documents.error} />;
  if (documents.data.items.length === 0) return <Empty>No documents yet. Upload some above.</Empty>;
  return (
    <section aria-labelledby="docs-title" className="card mb-4 overflow-x-auto">
      <h2 id="docs-title" className="mb-2 font-medium">Documents</h2>
      <ErrorText error={remove.error} />
      <table className="table">
        <thead>
          <tr>
            <th scope="col">File</th>
            <th scope="col">Status</th>
            <th scope="col">Chunks</th>
            <th scope="col">Added</th>
            <th scope="col"><span className="sr-only">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          {documents.data.items.map((d) => (
            <tr key={d.id} id={`doc-${d.id}`} data-document-status={d.status}>
              <td>
                {d.filename}
                <div className="text-xs text-slate-500">{(d.size_bytes / 1024).toFixed(1)} KB</div>
              </td>
              <td>
                <span className={`rounded px-2 py-0.5 text-xs ${STATUS_STYLE[d.status] ?? ""}`}>{d.status}</span>
                {d.status !== "ready" && d.status !== "failed" && (
                  <progress className="ml-2 h-2 w-20 align-middle" max={1} value={d.progress} aria-label={`${d.filename} progress`} />
                )}
                {d.error && (
                  <p className="mt-1 text-xs text-red-700">
                    {d.error}
                    {d.error_code ? ` (${d.error_code})` : ""}
                  </p>
                )}
              </td>
              <td>{d.chunk_count}</td>
              <td>{formatDate(d.created_at)}</td>
              <td>
                <ConfirmButton label="Delete" confirmLabel={`Delete ${d.filename}`} onConfirm={() => remove.mutate(d.id)} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function SearchTester({ assistantId }: { assistantId: string }) {
  const [query, setQuery] = useState("");
  const [topK, setTopK] = useState("5");
  const search = useMutation({
    mutationFn: () =>
      api<{ items: SearchHit[] }>(`/api/assistants/${assistantId}/search`, { method: "POST", body: { query, top_k: Number(topK) } }),
  });
  return (
    <section aria-labelledby="search-title" className="card">
      <h2 id="search-title" className="mb-2 font-medium">Search tester</h2>
      <form
        className="flex flex-wrap items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          search.mutate();
        }}
      >
        <div className="min-w-48 flex-1">
          <label htmlFor="search-query" className="label">Query</label>
          <input id="search-query" className="field" required value={query} onChange={(e) => setQuery(e.target.value)} />
        </div>
        <div className="w-24">
          <label htmlFor="search-k" className="label">Top k</label>
          <input id="search-k" type="number" min={1} max={50} className="field" value={topK} onChange={(e) => setTopK(e.target.value)} />
        </div>
        <button type="submit" className="btn" disabled={search.isPending}>Search</button>
      </form>
      <ErrorText error={search.error} />
      {search.data &&
        (search.data.items.length === 0 ? (
          <p className="mt-2 text-sm text-slate-500">No passages matched.</p>
        ) : (
          <ol className="mt-3 space-y-2 text-sm">
            {search.data.items.map((hit) => (
              <li key={hit.chunk_id} className="rounded border border-slate-200 p-2">
                <p className="text-xs text-slate-500">
                  {hit.filename} · score {hit.score.toFixed(3)} · similarity {hit.similarity.toFixed(3)}
                </p>
                <p className="whitespace-pre-wrap">{hit.text}</p>
              </li>
            ))}
          </ol>
        ))}
    </section>
  );
}

function Knowledge() {
  const { assistantId } = useSelectedAssistant();
  return (
    <>
      <PageTitle title="Knowledge">
        <AssistantPicker />
      </PageTitle>
      {!assistantId ? (
        <Empty>Create an assistant first.</Empty>
      ) : (
        <>
          <Uploader assistantId={assistantId} />
          <Documents assistantId={assistantId} />
          <SearchTester assistantId={assistantId} />
        </>
      )}
    </>
  );
}

export default function KnowledgePage() {
  return (
    <AppShell>
      <Knowledge />
    </AppShell>
  );
}
