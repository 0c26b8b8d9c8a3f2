#!/usr/bin/env node
/** cli/ — the `pgferry` command: argument parsing and dispatch (main.ts), one file per command (commands/), the error report every command prints, signals. */
import { applyHeapPolicy } from "./heapPolicy.js";
import { main } from "./main.js";

applyHeapPolicy();

main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then(
  (code) => { process.exitCode = code; },
  (error: unknown) => { console.error(error); process.exitCode = 1; },
);
