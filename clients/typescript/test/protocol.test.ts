// The sans-I/O core and the small modules, without a server: feed the
// protocol text, assert on what it sends and what it received (STYLE X3).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AlreadyEnded,
  AuthError,
  Close,
  ClientProtocol,
  ConstantBackoff,
  DeltaGap,
  encodeJson,
  errorFrom,
  ExponentialBackoff,
  Forbidden,
  IdConflict,
  InvalidEvent,
  isRetryable,
  OffsetGone,
  ProtocolError,
  SessionNotFound,
  SessionRuleError,
  TailMismatch,
  ThreadlineError,
  tokenClaims,
  Tokens,
  UnknownReference,
  uuid7,
} from "../src/index.js";
import { Outbox, utf8Size } from "../src/protocol/frames.js";
import { draftJson } from "../src/session.js";

const OFFSET_1 = "0000000000000001_0000000000000001";
const OFFSET_2 = "0000000000000001_0000000000000002";

function connected(): ClientProtocol {
  const client = new ClientProtocol({ token: "tok", device: "tab-1" });
  client.connect();
  client.dataToSend();
  return client;
}

function event(offset: string): Record<string, unknown> {
  return { v: 1, offset, type: "x.test", id: offset, actor: { id: "a", role: "service" }, data: {} };
}

test("a frame that is not a JSON array closes 4409", () => {
  const client = connected();
  client.receiveText("{}");
  const [close] = client.dataToSend();
  assert.ok(close instanceof Close);
  assert.equal(close.code, 4409);
  assert.equal(client.state, "closed");
});

test("a frame over the message limit closes 4413", () => {
  const client = new ClientProtocol({ token: "tok", maxMessages: 1 });
  client.connect();
  client.dataToSend();
  client.receiveText('[{"type":"x"},{"type":"y"}]');
  const [close] = client.dataToSend();
  assert.ok(close instanceof Close);
  assert.equal(close.code, 4413);
});

test("a lone surrogate in a frame closes 4409", () => {
  const client = connected();
  client.receiveText('[{"type":"error","code":"x","message":"\\ud800"}]');
  const [close] = client.dataToSend();
  assert.ok(close instanceof Close);
  assert.equal(close.code, 4409);
});

test("messages of unknown types are skipped, unknown fields dropped", () => {
  const client = connected();
  client.receiveText('[{"type":"future"},{"type":"error","code":"nope","message":"m","extra":1}]');
  assert.deepEqual(client.eventsReceived(), [{ type: "error", code: "nope", message: "m" }]);
});

test("events at or before the last offset are dropped", () => {
  const client = connected();
  client.subscribe("s1", OFFSET_1);
  client.dataToSend();
  client.receiveText(encodeJson([{ type: "events", session: "s1", events: [event(OFFSET_1), event(OFFSET_2)] }]));
  const [events] = client.eventsReceived();
  assert.ok(events?.type === "events");
  assert.deepEqual(
    events.events.map((e) => e.offset),
    [OFFSET_2],
  );
  assert.deepEqual(client.subscriptions, { s1: OFFSET_2 });
});

test("a reconnect resubscribes from the last offset and resends pending publishes", () => {
  const client = connected();
  client.subscribe("s1");
  client.receiveText(encodeJson([{ type: "subscribed", rid: "1", session: "s1", offset: OFFSET_1, state: {} }]));
  const rid = client.publish("s1", [{ type: "x.a", id: "e1", data: {} }]);
  client.dataToSend();
  assert.equal(client.receiveClose(1006), true);
  client.connect();
  assert.deepEqual(client.dataToSend(), [
    '[{"type":"hello","token":"tok","device":"tab-1"},' +
      `{"type":"subscribe","rid":"1","session":"s1","offset":"${OFFSET_1}","view":"raw"},` +
      `{"type":"publish","rid":"${rid}","session":"s1","events":[{"type":"x.a","id":"e1","data":{}}]}]`,
  ]);
});

test("while disconnected only the latest cursor per session waits", () => {
  const client = new ClientProtocol({ token: "tok" });
  client.sendCursor("s1", OFFSET_1);
  client.sendPresence("s1", "typing");
  client.sendCursor("s1", OFFSET_2);
  client.connect();
  assert.deepEqual(client.dataToSend(), [
    '[{"type":"hello","token":"tok"},' +
      `{"type":"cursor","session":"s1","offset":"${OFFSET_2}"},` +
      '{"type":"presence","session":"s1","status":"typing"}]',
  ]);
});

test("a terminal close drops pending publishes and keeps subscriptions", () => {
  const client = connected();
  client.subscribe("s1");
  client.publish("s1", [{ type: "x.a", id: "e1", data: {} }]);
  assert.equal(client.receiveClose(4401), false);
  assert.deepEqual(client.pendingPublishes, []);
  assert.deepEqual(client.subscriptions, { s1: "-1" });
});

test("an error answering a subscribe ends the subscription", () => {
  const client = connected();
  const rid = client.subscribe("s1");
  client.receiveText(encodeJson([{ type: "error", rid, code: "forbidden", message: "no" }]));
  assert.deepEqual(client.subscriptions, {});
  assert.equal(client.eventsReceived().length, 1);
});

test("bad arguments throw RangeError and change nothing", () => {
  const client = connected();
  assert.throws(() => client.subscribe("bad session"), RangeError);
  assert.throws(() => client.sendCursor("s1", "-1"), RangeError);
  assert.throws(() => client.publish("s1", []), RangeError);
  client.subscribe("s1");
  assert.throws(() => client.subscribe("s1"), RangeError);
  assert.throws(() => new ClientProtocol({ token: "tok", device: "tab 1" }), RangeError);
  const small = new ClientProtocol({ token: "tok", maxFrameBytes: 100 });
  assert.throws(() => small.publish("s1", [{ type: "x.a", id: "e1", data: { text: "x".repeat(100) } }]), RangeError);
});

test("the outbox packs messages into frames within the limits", () => {
  const outbox = new Outbox({ maxFrameBytes: 10, maxMessages: 2 });
  for (const text of ['"a"', '"b"', '"c"', '"dddddddddddd"']) outbox.add(text);
  assert.deepEqual(outbox.frames(), ['["a","b"]', '["c"]', '["dddddddddddd"]']);
});

test("utf8Size counts UTF-8 bytes", () => {
  assert.equal(utf8Size("aé€😀"), 1 + 2 + 3 + 4);
  assert.equal(utf8Size("\ud800"), 3);
});

test("encodeJson refuses NaN and infinities", () => {
  assert.throws(() => encodeJson({ x: Number.NaN }), RangeError);
  assert.throws(() => encodeJson([Infinity]), RangeError);
  assert.equal(encodeJson({ a: "é", b: [1, "\n"] }), '{"a":"é","b":[1,"\\n"]}');
});

test("close codes: the range decides whether to retry", () => {
  for (const code of [1001, 1006, 1011, 1012, 4000, 4001, 4002, 4099, 4900, 4949, 3000]) {
    assert.equal(isRetryable(code), true, String(code));
  }
  for (const code of [1000, 1002, 1003, 1007, 1008, 1009, 1010, 4401, 4403, 4409, 4413, 4950, 4999]) {
    assert.equal(isRetryable(code), false, String(code));
  }
  assert.throws(() => new Close(1006), RangeError);
  assert.equal(Close.truncated(4409, "é".repeat(100)).reason, "é".repeat(61));
});

test("server errors become the class of their code", () => {
  assert.ok(errorFrom("forbidden", "m") instanceof Forbidden);
  assert.ok(errorFrom("forbidden", "m") instanceof SessionRuleError);
  assert.ok(errorFrom("session_not_found", "m") instanceof SessionNotFound);
  assert.ok(errorFrom("id_conflict", "m") instanceof IdConflict);
  assert.ok(errorFrom("invalid_token", "m") instanceof AuthError);
  assert.ok(errorFrom("unknown_message", "m") instanceof UnknownReference);
  assert.ok(errorFrom("message_ended", "m") instanceof AlreadyEnded);
  assert.ok(errorFrom("invalid_message", "m") instanceof ProtocolError);
  const gap = errorFrom("delta_gap", "m", { expected: 3, status: 409 });
  assert.ok(gap instanceof DeltaGap && gap.expected === 3);
  const gone = errorFrom("offset_gone", "m", { earliest: OFFSET_1, tail: OFFSET_2 });
  assert.ok(gone instanceof OffsetGone && gone.earliest === OFFSET_1 && gone.tail === OFFSET_2);
  const tail = errorFrom("tail_mismatch", "m", { offset: OFFSET_2 });
  assert.ok(tail instanceof TailMismatch && tail.tail === OFFSET_2);
  const error = errorFrom("not_supported", "m");
  assert.ok(error instanceof ThreadlineError);
  assert.equal(error.name, "ProtocolError");
  assert.equal(error.code, "not_supported");
});

test("uuid7 ids are version 7 and increase strictly", () => {
  const ids = Array.from({ length: 5000 }, () => uuid7());
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `${ids[i - 1]} < ${ids[i]}`);
});

test("drafts get an id and a local check of their envelope", () => {
  const draft = draftJson({ type: "x.order.lookup", data: { order: 1 } });
  assert.match(draft.id, /^[0-9a-f-]{36}$/);
  assert.throws(() => draftJson({ type: "bogus", data: {} }), InvalidEvent);
  assert.throws(() => draftJson({ type: "x.a", data: [] as never }), InvalidEvent);
  assert.throws(() => draftJson({ type: "x.a", data: {}, id: "a b" }), InvalidEvent);
});

test("token claims are read without verification", () => {
  const payload = Buffer.from(JSON.stringify({ sub: "cust_1", role: "customer", exp: 1 })).toString("base64url");
  assert.deepEqual(tokenClaims(`h.${payload}.s`), { sub: "cust_1", role: "customer", exp: 1 });
  assert.deepEqual(tokenClaims("opaque"), {});
});

test("exponential backoff stays within its jittered bounds", () => {
  const backoff = new ExponentialBackoff({ base: 100, cap: 1000, random: () => 0.999 });
  assert.ok(backoff.compute(0) < 100);
  assert.ok(backoff.compute(3) < 800);
  assert.ok(backoff.compute(50) < 1000);
  assert.equal(new ConstantBackoff(7).compute(9), 7);
  assert.throws(() => new ExponentialBackoff({ base: 10, cap: 1 }), RangeError);
});

function jwt(claims: Record<string, unknown>): string {
  return `h.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.s`;
}

test("a token is refreshed ahead of its expiry, through the hook", async () => {
  const soon = jwt({ sub: "a", exp: Date.now() / 1000 + 60.02 });
  const later = jwt({ sub: "a", exp: Date.now() / 1000 + 3600 });
  let calls = 0;
  const tokens = new Tokens(soon, () => {
    calls += 1;
    return later;
  });
  const seen: string[] = [];
  tokens.addListener((value) => seen.push(value));
  tokens.start();
  try {
    const deadline = Date.now() + 2000;
    while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(seen, [later]);
    assert.equal(calls, 1);
    assert.equal(tokens.token, later);
  } finally {
    tokens.stop();
  }
});

test("concurrent refreshes of one stale token share one call of the hook", async () => {
  let calls = 0;
  const tokens = new Tokens(undefined, async () => {
    calls += 1;
    await new Promise((r) => setTimeout(r, 5));
    return `token-${calls}`;
  });
  assert.deepEqual(await Promise.all([tokens.current(), tokens.current(), tokens.refresh(undefined)]), [
    "token-1",
    "token-1",
    true,
  ]);
  assert.equal(calls, 1);
  assert.throws(() => new Tokens(undefined), TypeError);
});
