// Run the compiled tests (dist/tsc/test/*.test.js) with node's test runner.
// Node 20 has a WebSocket client only behind --experimental-websocket (Node
// 22 has it by default): the flag is passed when the global is missing.
// Arguments naming test files (protocol.test.js) select them; the others go
// to node (e.g. --test-name-pattern=transcript).
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dir = join(root, "dist", "tsc", "test");
const args = process.argv.slice(2);
const chosen = args.filter((arg) => arg.endsWith(".test.js"));
const files = (chosen.length > 0 ? chosen : readdirSync(dir).filter((name) => name.endsWith(".test.js")))
  .sort()
  .map((name) => join(dir, name));
const flags = typeof globalThis.WebSocket === "function" ? [] : ["--experimental-websocket"];
const result = spawnSync(
  process.execPath,
  [...flags, "--test", "--test-reporter=spec", ...args.filter((arg) => !arg.endsWith(".test.js")), ...files],
  { stdio: "inherit", env: process.env },
);
process.exit(result.status ?? 1);
