// ESLint for the web UI: the recommended JavaScript and TypeScript rules, and React's rules of
// hooks (a hook called conditionally, or an effect that misses what it reads, is a real bug).
// `npm run lint`; scripts/test.sh runs it beside the type check and the Vitest tests.
import js from "@eslint/js";
import reactHooks from "eslint-plugin-react-hooks";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist", "node_modules"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["src/**/*.{ts,tsx}"],
    plugins: { "react-hooks": reactHooks },
    rules: {
      "react-hooks/rules-of-hooks": "error",
      "react-hooks/exhaustive-deps": "error",
      // `const { models: _models, ...rest } = entry` drops a key: the rest is what is used.
      "@typescript-eslint/no-unused-vars": ["error", { ignoreRestSiblings: true, argsIgnorePattern: "^_" }],
    },
  },
);
