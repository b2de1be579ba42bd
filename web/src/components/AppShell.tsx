"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { usePathname, useRouter } from "next/navigation";
import { useEffect, useState } from "react";
import { api, forgetTokens } from "@/lib/api";
import { ApiError } from "@/lib/errors";
import { useMe } from "@/lib/queries";
import { useLive } from "./LiveProvider";
import { ErrorText, Loading } from "./ui";

const NAV = [
  { href: "/", label: "Assistants" },
  { href: "/playground/", label: "Playground" },
  { href: "/knowledge/", label: "Knowledge" },
  { href: "/channels/", label: "Channels" },
  { href: "/inbox/", label: "Inbox" },
  { href: "/billing/", label: "Billing" },
  { href: "/analytics/", label: "Analytics" },
];

/** The signed-in frame: navigation, the connection banner, and a redirect to sign-in without a session. */
export function AppShell({ children, adminOnly = false }: { children: React.ReactNode; adminOnly?: boolean }) {
  const me = useMe();
  const router = useRouter();
  const pathname = usePathname();
  const queryClient = useQueryClient();
  const { state } = useLive();
  const [menuOpen, setMenuOpen] = useState(false);
  const signedOut = me.error instanceof ApiError && me.error.status === 401;

  useEffect(() => {
    if (signedOut) router.replace("/login/");
  }, [signedOut, router]);

  const signOut = useMutation({
    mutationFn: () => api("/api/auth/logout", { method: "POST" }),
    onSettled: () => {
      forgetTokens();
      queryClient.clear();
      router.replace("/login/");
    },
  });

  if (me.isPending || signedOut) return <Loading what="Checking your session" />;
  if (me.error) return <ErrorText error={me.error} />;
  const nav = me.data.role === "admin" ? [...NAV, { href: "/admin/", label: "Admin" }] : NAV;
  const current = (href: string) => (href === "/" ? pathname === "/" : pathname.startsWith(href.replace(/\/$/, "")));

  return (
    <div className="min-h-screen md:flex">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:p-2">
        Skip to content
      </a>
      <header className="border-b border-slate-200 bg-white md:w-56 md:border-r md:border-b-0">
        <div className="flex items-center justify-between p-4">
          <span className="text-lg font-semibold text-indigo-700">ChatAI</span>
          <button
            type="button"
            className="btn-secondary md:hidden"
            aria-expanded={menuOpen}
            aria-controls="main-nav"
            onClick={() => setMenuOpen((open) => !open)}
          >
            Menu
          </button>
        </div>
        <nav id="main-nav" aria-label="Main" className={`${menuOpen ? "block" : "hidden"} md:block`}>
          <ul className="space-y-1 px-2 pb-4">
            {nav.map((item) => (
              <li key={item.href}>
                <Link
                  href={item.href}
                  aria-current={current(item.href) ? "page" : undefined}
                  className={`block rounded-md px-3 py-2 text-sm ${current(item.href) ? "bg-indigo-50 font-medium text-indigo-800" : "text-slate-700 hover:bg-slate-100"}`}
                  onClick={() => setMenuOpen(false)}
                >
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
          <div className="border-t border-slate-200 px-4 py-3 text-xs text-slate-500">
            <p className="truncate" title={me.data.email}>
              {me.data.email} · {me.data.role}
            </p>
            <button type="button" className="mt-2 text-sm text-indigo-700 underline" onClick={() => signOut.mutate()}>
              Sign out
            </button>
          </div>
        </nav>
      </header>
      <main id="main" className="flex-1 p-4 md:p-6">
        {state === "reconnecting" && (
          <p role="status" className="mb-4 rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-900">
            Connection lost — reconnecting. Live updates resume when it is back.
          </p>
        )}
        {adminOnly && me.data.role !== "admin" ? <ErrorText error={new Error("This page is for admins only.")} /> : children}
      </main>
    </div>
  );
}
