// The bundle (dist/threadline-client.js, what the demo pages load) exports
// what src/index.ts exports, and runs: the same code, one file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

import * as source from "../src/index.js";
import { REPO } from "./helpers.js";

const BUNDLE = join(REPO, "clients", "typescript", "dist", "threadline-client.js");

test("the bundle exports every name of src/index.ts", async () => {
  const bundle = (await import(pathToFileURL(BUNDLE).href)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(bundle).sort(), Object.keys(source).sort());
});

test("the bundle's protocol core works and its errors keep their names", async () => {
  const bundle = (await import(pathToFileURL(BUNDLE).href)) as typeof source;
  const client = new bundle.ClientProtocol({ token: "tok" });
  client.connect();
  assert.deepEqual(client.dataToSend(), ['[{"type":"hello","token":"tok"}]']);
  assert.equal(new bundle.SessionNotFound("m", "session_not_found").name, "SessionNotFound");
});
