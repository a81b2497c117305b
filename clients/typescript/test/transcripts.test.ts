// The golden transcripts of conformance/transcripts replay through the
// TypeScript ClientProtocol byte for byte (STYLE X9), as
// tests/protocol/test_transcripts.py replays them through Python's. The
// format is described in conformance/transcripts/README.md.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";

import { Close, ClientProtocol, encodeJson, encodeMessage, isRetryable, parseServerMessage } from "../src/index.js";
import { decodeFrame } from "../src/protocol/frames.js";
import type { ClientMessage, ServerMessage } from "../src/protocol/types.js";
import { REPO } from "./helpers.js";

const DIR = process.env["THREADLINE_TRANSCRIPTS"] ?? join(REPO, "conformance", "transcripts");

interface Step {
  connect?: boolean;
  now?: number;
  call?: string;
  args?: Record<string, unknown>;
  returns?: unknown;
  direction?: "c2s" | "s2c";
  frame?: string;
  close?: number;
  reason?: string;
  retryable?: boolean;
  invalid?: boolean;
  client_receives?: unknown[];
}

interface Transcript {
  description: string;
  replay: ("server" | "client")[];
  client?: { token: string; device?: string; max_frame_bytes?: number; max_messages?: number };
  steps: Step[];
}

const NAMES = readdirSync(DIR)
  .filter((name) => name.endsWith(".json"))
  .map((name) => name.slice(0, -".json".length))
  .sort();

function load(name: string): Transcript {
  return JSON.parse(readFileSync(join(DIR, `${name}.json`), "utf8")) as Transcript;
}

/** The server messages of a frame, as the protocol reads them. */
function serverMessages(frame: string): ServerMessage[] {
  return decodeFrame(frame).map(parseServerMessage);
}

/** The application calls of a transcript (Python's names) on the TS protocol. */
function call(client: ClientProtocol, method: string, args: Record<string, unknown>): unknown {
  // The transcript's arguments are the call's, as Python names them.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const a = args as any;
  switch (method) {
    case "subscribe":
      return client.subscribe(a["session"], a["offset"], a["view"]);
    case "unsubscribe":
      return client.unsubscribe(a["session"]);
    case "publish":
      return client.publish(
        a["session"],
        a["events"],
        a["expected_offset"] === undefined ? {} : { expectedOffset: a["expected_offset"] },
      );
    case "send_cursor":
      return client.sendCursor(a["session"], a["offset"]);
    case "send_presence":
      return client.sendPresence(a["session"], a["status"]);
    case "refresh":
      return client.refresh(a["token"]);
    case "close":
      return client.close();
    default:
      throw new Error(`no such client call: ${method}`);
  }
}

/** Drive ClientProtocol through the transcript, checking all it sends. */
function replayClient(doc: Transcript): void {
  const options = doc.client!;
  const client = new ClientProtocol({
    token: options.token,
    ...(options.device === undefined ? {} : { device: options.device }),
    ...(options.max_frame_bytes === undefined ? {} : { maxFrameBytes: options.max_frame_bytes }),
    ...(options.max_messages === undefined ? {} : { maxMessages: options.max_messages }),
  });
  const outputs: (string | Close)[] = [];
  const finish = (): void => {
    outputs.push(...client.dataToSend());
    assert.deepEqual(outputs, [], "the client had more to send");
  };
  doc.steps.forEach((step, index) => {
    const where = `step ${index}: ${JSON.stringify(step).slice(0, 300)}`;
    if (step.connect) {
      finish();
      client.connect();
    } else if (step.call !== undefined) {
      const [side, method] = step.call.split(".") as [string, string];
      if (side === "client") {
        const result = call(client, method, step.args ?? {});
        assert.deepEqual(result, step.returns, where);
      }
    } else if (step.direction === "c2s") {
      if (outputs.length === 0) outputs.push(...client.dataToSend());
      assert.ok(outputs.length > 0, `${where}: nothing to send`);
      const item = outputs.shift();
      if (step.close !== undefined) {
        assert.ok(item instanceof Close, where);
        assert.equal(item.code, step.close, where);
        assert.equal(item.reason, step.reason, where);
      } else {
        assert.equal(item, step.frame, where);
      }
    } else if (step.direction === "s2c" && step.close !== undefined) {
      const retryable = client.receiveClose(step.close, step.reason ?? "");
      assert.equal(retryable, step.retryable, where);
    } else if (step.direction === "s2c") {
      client.receiveText(step.frame!);
      const expected = step.client_receives ?? serverMessages(step.frame!);
      assert.deepEqual(client.eventsReceived(), expected, where);
    }
  });
  finish();
  assert.deepEqual(client.eventsReceived(), []);
}

test("there are transcripts, each replayed by at least one side", () => {
  assert.ok(NAMES.length >= 20, `only ${NAMES.length} transcripts in ${DIR}`);
  for (const name of NAMES) assert.ok(load(name).replay.length > 0, name);
});

describe("client replay", () => {
  for (const name of NAMES) {
    const doc = load(name);
    if (!doc.replay.includes("client")) continue;
    test(`${name}: the client sends exactly the transcript's frames`, () => replayClient(doc));
  }
});

describe("frames of every transcript", () => {
  for (const name of NAMES) {
    const doc = load(name);
    test(`${name}: server frames parse and re-encode to the same bytes`, () => {
      for (const step of doc.steps) {
        if (step.direction !== "s2c" || step.frame === undefined || step.invalid) continue;
        assert.equal(encodeJson(serverMessages(step.frame)), step.frame);
      }
    });
    test(`${name}: valid client frames are in the canonical form the client writes`, () => {
      for (const step of doc.steps) {
        if (step.direction !== "c2s" || step.frame === undefined || step.invalid) continue;
        const messages = JSON.parse(step.frame) as ClientMessage[];
        assert.equal(`[${messages.map(encodeMessage).join(",")}]`, step.frame);
      }
    });
    test(`${name}: each server close states the retry decision of its code`, () => {
      for (const step of doc.steps) {
        if (step.direction === "s2c" && step.close !== undefined) {
          assert.equal(isRetryable(step.close), step.retryable, String(step.close));
        }
      }
    });
  }
});
