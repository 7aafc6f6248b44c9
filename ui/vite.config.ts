/// <reference types="vitest/config" />
import { fileURLToPath } from "node:url";
import tailwindcss from "@tailwindcss/vite";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The build lands inside the Python package (gitignored), so a wheel ships the UI and
// claracore/server/ui.py serves it at /ui/.
const outDir = fileURLToPath(new URL("../claracore/server/ui_build", import.meta.url));

export default defineConfig({
  base: "/ui/",
  plugins: [react(), tailwindcss()],
  build: {
    outDir,
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` serves the UI with hot reload and sends API calls to a running server.
    proxy: {
      "/v1": "http://127.0.0.1:5800",
      "/api": "http://127.0.0.1:5800",
      "/health": "http://127.0.0.1:5800",
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
