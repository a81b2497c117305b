// The client against a real Threadline server, which
// tests/clients/test_typescript.py starts (URL and tokens in the environment).
// Skipped without one. Each test uses sessions of its own.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  AuthError,
  Client,
  IdConflict,
  SessionNotFound,
  ThreadlineError,
  type Event,
  type Presence,
} from "../src/index.js";
import { client, MS, NO_SERVER, Proxy, SERVER, sessionId, sleep, token, waitFor } from "./helpers.js";

const clients: Client[] = [];

/** A client closed after the test file. */
function make(...args: Parameters<typeof client>): Client {
  const made = client(...args);
  clients.push(made);
  return made;
}

async function created(name: string, customer?: string): Promise<string> {
  const id = sessionId(name);
  await make("service").createSession(id, customer === undefined ? {} : { customer });
  return id;
}

/** Collect a subscription's events through `onEvent`. */
function collect(c: Client, session: string, offset = "-1") {
  const events: Event[] = [];
  const subscription = c.session(session).subscribe({ offset, onEvent: (event) => events.push(event) });
  return { events, subscription };
}

function offsets(events: readonly Event[]): string[] {
  return events.map((event) => event.offset);
}

/**
 * The events the test's clients wrote: without the server's (membership,
 * `participant.joined` / `left`, which a server with presence on logs).
 */
function written(events: readonly Event[]): Event[] {
  return events.filter((event) => event.actor.role !== "server");
}

/** Offsets strictly increase: no duplicate, in order. */
function assertIncreasing(events: readonly Event[]): void {
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i]!.offset > events[i - 1]!.offset, `${events[i - 1]!.offset} then ${events[i]!.offset}`);
  }
}

describe("against a server", { skip: NO_SERVER }, () => {
  before(() => {
    assert.ok(SERVER);
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
  });

  test("hello and subscribe: the subscription is live with the session's state", async () => {
    const id = await created("hello");
    let sockets = 0;
    class CountingWebSocket extends WebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        sockets += 1;
      }
    }
    const c = make("service", { device: "tab-ts-1", WebSocketImpl: CountingWebSocket });
    const subscription = c.session(id).subscribe();
    await subscription.ready;
    assert.equal(c.transport.connections, 1);
    assert.equal(sockets, 1);
    assert.equal((subscription.state?.["session"] as { id: string }).id, id);
    subscription.close();
  });

  test("a subscription replays history, then delivers live events, in order", async () => {
    const id = await created("replay");
    const writer = make("service").session(id);
    const early = await writer.publish([
      { type: "x.step", data: { n: 0 } },
      { type: "x.step", data: { n: 1 } },
      { type: "x.step", data: { n: 2 } },
    ]);
    const reader = make("service2").session(id).subscribe({ offset: "-1" });
    const seen: Event[] = [];
    for await (const event of reader) {
      if (event.actor.role !== "server") seen.push(event);
      if (seen.length === 3) break;
    }
    assert.deepEqual(offsets(seen), early);
    const live = collect(make("service2"), id, early[2]);
    await live.subscription.ready;
    const later = [await writer.publish({ type: "x.step", data: { n: 3 } })];
    later.push(await writer.publish({ type: "x.step", data: { n: 4 } }));
    await waitFor(() => written(live.events).length === 2);
    assert.deepEqual(offsets(written(live.events)), later);
    assert.deepEqual(
      written(live.events).map((event) => event.data["n"]),
      [3, 4],
    );
    assertIncreasing(live.events);
  });

  test("publishing an id again returns its offset; another body is an IdConflict", async () => {
    const id = await created("dedupe");
    const session = make("service").session(id);
    const first = await session.publish({ type: "x.order", id: "evt-1", data: { order: 1 } });
    const again = await session.publish({ type: "x.order", id: "evt-1", data: { order: 1 } });
    assert.equal(again, first);
    await assert.rejects(session.publish({ type: "x.order", id: "evt-1", data: { order: 2 } }), IdConflict);
    const ids = await session.publish([
      { type: "x.order", data: { order: 3 } },
      { type: "x.order", data: { order: 4 } },
    ]);
    assert.equal(ids.length, 2);
    assert.ok(ids[0]! > first && ids[1]! > ids[0]!);
  });

  test("a cut connection resumes from the last offset: no gap, no duplicate", async () => {
    const id = await created("resume");
    const proxy = await Proxy.start(SERVER!);
    try {
      const reader = make("service2", { url: proxy.url });
      const { events, subscription } = collect(reader, id);
      await subscription.ready;
      const writer = make("service").session(id);
      const published: string[] = [];
      let cuts = 0;
      for (let batch = 0; batch < 20; batch++) {
        published.push(
          ...(await writer.publish(
            Array.from({ length: 10 }, (_, n) => ({ type: "x.tick", data: { n: batch * 10 + n } })),
          )),
        );
        if (batch % 6 === 3) cuts += proxy.cut();
      }
      await waitFor(() => written(events).length >= published.length, 10_000 * MS);
      await sleep(50 * MS); // a duplicate would arrive now
      assert.ok(cuts >= 3, `cut ${cuts} connections`);
      assert.ok(reader.transport.connections >= 4, `${reader.transport.connections} connections`);
      assert.deepEqual(offsets(written(events)), published);
      assertIncreasing(events);
      assert.equal(subscription.offset, events.at(-1)!.offset);
    } finally {
      await proxy.stop();
    }
  });

  test("publishes in flight when the connection drops are resent and stored once", async () => {
    const id = await created("resend");
    const proxy = await Proxy.start(SERVER!);
    try {
      const writer = make("service", { url: proxy.url }).session(id);
      await writer.publish({ type: "x.warmup", data: {} }); // the connection is up
      const pending = Array.from({ length: 30 }, (_, n) => writer.publish({ type: "x.tick", id: `tick-${n}`, data: { n } }));
      proxy.cut();
      const answered = await Promise.all(pending);
      const reader = make("service2").session(id).subscribe();
      const seen: Event[] = [];
      for await (const event of reader) {
        if (event.actor.role !== "server") seen.push(event);
        if (seen.length === 31) break;
      }
      assert.deepEqual(
        seen.slice(1).map((event) => event.id),
        Array.from({ length: 30 }, (_, n) => `tick-${n}`),
      );
      assert.deepEqual(offsets(seen.slice(1)), answered);
    } finally {
      await proxy.stop();
    }
  });

  test("a slow iterating consumer pauses its subscription and misses nothing", async () => {
    const id = await created("slow");
    const writer = make("service").session(id);
    const published: string[] = [];
    for (let batch = 0; batch < 5; batch++) {
      published.push(
        ...(await writer.publish(Array.from({ length: 20 }, (_, n) => ({ type: "x.tick", data: { n } })))),
      );
    }
    const c = make("service2");
    let pauses = 0;
    const pause = c.transport.pause.bind(c.transport);
    c.transport.pause = (sink) => {
      pauses += 1;
      pause(sink);
    };
    const reader = c.session(id).subscribe({ maxQueue: 7 });
    const seen: string[] = [];
    for await (const event of reader) {
      if (event.actor.role === "server") continue;
      seen.push(event.offset);
      if (seen.length % 10 === 0) await sleep(5 * MS);
      if (seen.length === published.length) break;
    }
    assert.deepEqual(seen, published);
    assert.ok(pauses >= 1, "the subscription never paused");
  });

  test("streamMessage publishes start, deltas in seq order, and a complete end", async () => {
    const id = await created("stream");
    const { events, subscription } = collect(make("service2"), id);
    await subscription.ready;
    const stream = await make("service")
      .session(id)
      .streamMessage(
        async (message) => {
          for (const word of ["Your ", "order ", "ships ", "today."]) await message.write(word);
        },
        { maxInFlight: 2 },
      );
    assert.equal(stream.status, "complete");
    await waitFor(() => written(events).length === 6);
    const message = written(events);
    assert.deepEqual(
      message.map((event) => event.type),
      ["message.start", "message.delta", "message.delta", "message.delta", "message.delta", "message.end"],
    );
    assert.deepEqual(
      message.slice(1, 5).map((event) => event.data["seq"]),
      [0, 1, 2, 3],
    );
    assert.equal(message[5]!.data["status"], "complete");
    assert.ok(stream.peakInFlight <= 2);
  });

  test("a producer that throws ends its message with an error", async () => {
    const id = await created("stream-error");
    const session = make("service").session(id);
    await assert.rejects(
      session.streamMessage(async (message) => {
        await message.write("Let me check");
        throw new Error("the model failed");
      }),
      /the model failed/,
    );
    const state = await session.state();
    assert.deepEqual(state["messages"], []); // no message left open
  });

  test("sendMessage publishes a complete message with the token's role", async () => {
    const id = await created("send", "cust_ts");
    const customer = make("customer").session(id);
    const offset = await customer.sendMessage("Where is my order?");
    const reader = make("service2").session(id).subscribe();
    for await (const event of reader) {
      if (event.type !== "message") continue;
      assert.equal(event.data["role"], "user");
      assert.equal(event.actor.id, "cust_ts");
      assert.deepEqual(event.data["parts"], [{ type: "text", text: "Where is my order?" }]);
      assert.ok(event.offset);
      break;
    }
    assert.ok(offset);
  });

  test("mySessions lists the caller's sessions with their unread counts", async () => {
    const id = await created("mine", "cust_ts");
    await make("service").session(id).sendMessage("Your order shipped.");
    const listed = await make("customer").mySessions();
    const mine = listed.find((item) => item.session.id === id);
    assert.ok(mine, `${id} not in ${JSON.stringify(listed)}`);
    assert.equal(mine.session.customer, "cust_ts");
    assert.equal(mine.unread, 1);
    assert.equal(mine.in_flight, false);
  });

  test("open() connects before any subscription", async () => {
    const c = make("service2");
    assert.equal(c.connectionState, "idle");
    c.open();
    await waitFor(() => c.connectionState === "live");
    assert.equal(c.transport.connections, 1);
  });

  test("connection state: connecting, live, reconnecting after a cut, live, closed", async () => {
    const id = await created("state");
    const proxy = await Proxy.start(SERVER!);
    try {
      const c = client("service2", { url: proxy.url });
      const states: string[] = [];
      c.onConnection((state) => states.push(state));
      assert.equal(c.connectionState, "idle");
      await c.session(id).subscribe().ready;
      assert.deepEqual(states, ["connecting", "live"]);
      proxy.cut();
      await waitFor(() => states.length >= 4);
      c.open(); // already open: nothing changes
      assert.deepEqual(states, ["connecting", "live", "reconnecting", "live"]);
      await c.close();
      assert.equal(c.connectionState, "closed");
      assert.equal(states.at(-1), "closed");
    } finally {
      await proxy.stop();
    }
  });

  test("setCursor moves the reader's cursor", async () => {
    const id = await created("cursor", "cust_ts");
    await make("service").session(id).sendMessage("Hello! How can I help?");
    const customer = make("customer").session(id);
    const subscription = customer.subscribe();
    let event: Event | undefined;
    for await (event of subscription) if (event.type === "message") break;
    assert.ok(event !== undefined);
    const offset = event.offset;
    customer.setCursor(offset);
    await waitFor(async () => {
      const cursors = (await customer.state())["cursors"] as { participant: string; offset: string }[];
      return cursors.some((cursor) => cursor.participant === "cust_ts" && cursor.offset === offset);
    });
  });

  test("presence: a subscriber sees another device type, idle, then go offline", async (t) => {
    const id = await created("presence", "cust_ts");
    const observer = make("service2");
    const changes: Presence[] = [];
    observer.session(id).onPresence((presence) => changes.push(presence));
    await observer.session(id).subscribe().ready;
    const customer = make("customer", { device: "tab-ts-7" });
    const refused: ThreadlineError[] = [];
    customer.onError((error) => refused.push(error));
    const session = customer.session(id);
    await session.subscribe().ready;
    session.setPresence("typing");
    await waitFor(
      () =>
        refused.length > 0 ||
        changes.some((change) => change.actor.id === "cust_ts" && change.status === "typing"),
    );
    if (refused.some((error) => error.code === "not_supported")) {
      t.skip("the server answers presence with not_supported (presence is off, or not implemented there yet)");
      return;
    }
    assert.deepEqual(refused, []);
    const typing = changes.find((change) => change.actor.id === "cust_ts" && change.status === "typing");
    assert.equal(typing?.actor.device, "tab-ts-7");
    assert.equal(typing?.session, id);
    session.setPresence("idle");
    await waitFor(() => changes.some((change) => change.actor.id === "cust_ts" && change.status === "idle"));
    // Gone for good: offline once the grace period (5 s by default) ran out.
    await customer.close();
    await waitFor(
      () => changes.some((change) => change.actor.id === "cust_ts" && change.status === "offline"),
      15_000 * MS,
    );
    assert.ok(changes.every((change) => change.session === id && change.actor.id !== "svc_ts2"));
  });

  test("a subscription to a session that does not exist fails with SessionNotFound", async () => {
    const subscription = make("service").session(sessionId("missing")).subscribe();
    await assert.rejects(subscription.ready, SessionNotFound);
    await assert.rejects(subscription.next(), SessionNotFound);
  });

  test("a forged token closes 4401: an AuthError, and the client stops", async () => {
    const c = make("forged");
    const id = await created("forged");
    const subscription = c.session(id).subscribe();
    await assert.rejects(subscription.ready, AuthError);
    await assert.rejects(c.session(id).publish({ type: "x.a", data: {} }), AuthError);
    assert.equal(c.transport.connections, 1);
  });

  test("getToken replaces a token the server refuses, once", async () => {
    let calls = 0;
    const c = make("forged", {
      getToken: () => {
        calls += 1;
        return token("service");
      },
    });
    const id = await created("refresh");
    await c.session(id).subscribe().ready;
    assert.equal(calls, 1);
    assert.equal(c.transport.connections, 2);
  });

  test("a client that is closed rejects what waits and refuses new calls", async () => {
    const id = await created("close");
    const c = make("service");
    const subscription = c.session(id).subscribe();
    await subscription.ready;
    await c.close();
    const rest: Event[] = [];
    for await (const event of subscription) rest.push(event); // what was queued, then the end
    assert.deepEqual(written(rest), []);
    assert.throws(() => c.session(id).subscribe(), /closed/);
  });
});
