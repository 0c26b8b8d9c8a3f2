// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "dist-tools/", "node_modules/", "bench/results/", "coverage/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A daemon that drops a promise loses errors; every promise is awaited or handled.
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true, allowBoolean: true, allowNullish: true }],
      "no-restricted-syntax": [
        "error",
        { selector: "MemberExpression[object.name='process'][property.name='env']", message: "Only src/config reads process.env." },
      ],
    },
  },
  {
    // The process entry point hands the environment to src/config; nothing else reads it.
    files: ["src/config/**", "src/cli/bin.ts", "test/**", "tools/embedded/**", "vitest.config.ts", "vitest.soak.config.ts"],
    rules: { "no-restricted-syntax": "off" },
  },
  {
    // Plain JavaScript (the config itself, code-hook modules) is not in the TypeScript project.
    files: ["eslint.config.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
  },
);
