"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { api, rememberTokens } from "@/lib/api";
import { keys } from "@/lib/queries";
import { ErrorText } from "./ui";

type TokenPair = { access_token: string; refresh_token: string; expires_in: number };

/** Sign-in and sign-up share one form; signing up signs in right after. */
export function AuthForm({ mode }: { mode: "login" | "signup" }) {
  const router = useRouter();
  const queryClient = useQueryClient();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [name, setName] = useState("");
  const submit = useMutation({
    mutationFn: async () => {
      if (mode === "signup") {
        await api("/api/auth/register", { method: "POST", body: { email, password, ...(name ? { name } : {}) } });
      }
      const pair = await api<TokenPair>("/api/auth/login", { method: "POST", body: { email, password } });
      rememberTokens(pair);
    },
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: keys.me });
      router.replace("/");
    },
  });
  const title = mode === "login" ? "Sign in" : "Create your account";
  return (
    <main className="mx-auto mt-16 max-w-sm px-4">
      <h1 className="mb-6 text-2xl font-semibold">{title}</h1>
      <form
        className="card space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          submit.mutate();
        }}
      >
        {mode === "signup" && (
          <div>
            <label htmlFor="name" className="label">
              Name (optional)
            </label>
            <input id="name" className="field" value={name} onChange={(e) => setName(e.target.value)} autoComplete="name" />
          </div>
        )}
        <div>
          <label htmlFor="email" className="label">
            Email
          </label>
          <input
            id="email"
            type="email"
            required
            className="field"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            autoComplete="email"
          />
        </div>
        <div>
          <label htmlFor="password" className="label">
            Password
          </label>
          <input
            id="password"
            type="password"
            required
            minLength={mode === "signup" ? 8 : 1}
            className="field"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            autoComplete={mode === "signup" ? "new-password" : "current-password"}
            aria-describedby={mode === "signup" ? "password-help" : undefined}
          />
          {mode === "signup" && (
            <p id="password-help" className="mt-1 text-xs text-slate-500">
              At least 8 characters, not a common password.
            </p>
          )}
        </div>
        <ErrorText error={submit.error} />
        <button type="submit" className="btn w-full" disabled={submit.isPending}>
          {submit.isPending ? "Please wait…" : title}
        </button>
      </form>
      <p className="mt-4 text-center text-sm">
        {mode === "login" ? (
          <>
            No account? <Link href="/signup/" className="text-indigo-700 underline">Sign up</Link>
          </>
        ) : (
          <>
            Have an account? <Link href="/login/" className="text-indigo-700 underline">Sign in</Link>
          </>
        )}
      </p>
    </main>
  );
}
