// Build the client: type-check the sources as browser code (no Node types),
// compile sources and tests for `node --test` (dist/tsc), write the type
// declarations (dist/types), and bundle src/index.ts into one ES module,
// dist/threadline-client.js. With --ship, copy that bundle to the Python
// package's demo assets (src/threadline/demo/static/threadline-client.js),
// which tests/clients/test_typescript.py compares byte for byte with a fresh
// build.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);
const tsc = require.resolve("typescript/bin/tsc");
const bundle = join(root, "dist", "threadline-client.js");
const shipped = join(root, "..", "..", "src", "threadline", "demo", "static", "threadline-client.js");

function run(...args) {
  try {
    execFileSync(process.execPath, [tsc, ...args], { cwd: root, stdio: "inherit" });
  } catch {
    console.error(`build: tsc ${args.join(" ")} failed`);
    process.exit(1);
  }
}

rmSync(join(root, "dist"), { recursive: true, force: true });
run("-p", "tsconfig.json");
run("-p", "tsconfig.test.json");
await build({
  absWorkingDir: root,
  entryPoints: ["src/index.ts"],
  outfile: bundle,
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  charset: "utf8",
  legalComments: "none",
  logLevel: "warning",
  banner: {
    js:
      "// Threadline client (clients/typescript), bundled by `npm run ship`.\n" +
      "// Generated: do not edit. Change clients/typescript/src and rebuild.",
  },
});
if (process.argv.includes("--ship")) {
  mkdirSync(dirname(shipped), { recursive: true });
  copyFileSync(bundle, shipped);
  console.log(`shipped ${shipped}`);
}
