/** The console is a static export served by the API (or nginx) under /app/. */
const apiBase = process.env.CHATAI_API_URL || "http://127.0.0.1:8000";
const isDev = process.env.NODE_ENV === "development";

/** @type {import('next').NextConfig} */
const config = {
  output: "export",
  basePath: "/app",
  trailingSlash: true,
  images: { unoptimized: true },
  // `npm run dev` proxies the API so the session cookies stay same-origin (export builds ignore this).
  ...(isDev
    ? {
        async rewrites() {
          return [
            { source: "/api/:path*", destination: `${apiBase}/api/:path*`, basePath: false },
            { source: "/widget.js", destination: `${apiBase}/widget.js`, basePath: false },
            { source: "/widget/:path*", destination: `${apiBase}/widget/:path*`, basePath: false },
          ];
        },
      }
    : {}),
};

export default config;
