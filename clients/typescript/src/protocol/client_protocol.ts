/**
 * The client's end of a WebSocket connection: a sans-I/O state machine, the
 * twin of Python's `threadline.protocol.client_protocol.ClientProtocol`.
 *
 * It does no I/O and reads no clock. The I/O layer feeds it what the server
 * sent ({@link ClientProtocol.receiveText}, {@link ClientProtocol.receiveClose}),
 * takes what it decoded ({@link ClientProtocol.eventsReceived}), and sends
 * what it queued ({@link ClientProtocol.dataToSend}). The golden transcripts
 * of `conformance/transcripts/` replay through it byte for byte.
 *
 * @module
 */

import { ProtocolError } from "../errors.js";
import { Close, CloseCode, ErrorCode, isRetryable } from "./codes.js";
import {
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_MESSAGES,
  Outbox,
  decodeFrame,
  utf8Size,
  type FrameLimits,
  type JSONObject,
} from "./frames.js";
import {
  NOW,
  SERVER_TYPES,
  START,
  checkClientMessage,
  encodeMessage,
  parseServerMessage,
} from "./messages.js";
import type {
  ClientMessage,
  Cursor,
  Event,
  EventDraft,
  Events,
  PresenceStatus,
  ServerMessage,
  SetPresence,
  View,
} from "./types.js";

/** Where a connection is in its life: `open` between `connect()` and its end. */
export type State = "open" | "closed";

/** Options of {@link ClientProtocol}. */
export interface ClientProtocolOptions {
  /** The bearer token for `hello` (required before `connect()`). */
  token?: string;
  /** This tab's or install's stable id, sent in `hello`. */
  device?: string;
  /** Largest frame, received or sent (default 2 MiB). */
  maxFrameBytes?: number;
  /** Most messages in one frame, received or sent (default 256). */
  maxMessages?: number;
}

interface SubscriptionState {
  rid: string;
  offset: string; // resume point: the last offset received, or the one asked for
  view: View;
}

/**
 * A message's malformed value, thrown at the caller.
 *
 * @throws RangeError - always: a caller's bad argument.
 */
function checked<M extends ClientMessage>(message: M): M {
  try {
    checkClientMessage(message);
  } catch (exc) {
    if (exc instanceof ProtocolError) throw new RangeError(exc.message);
    throw exc;
  }
  return message;
}

/**
 * The client's end of a connection, and of the connections that follow it.
 *
 * One instance outlives its connections: it remembers each subscription's
 * last offset and the publishes not yet answered, so `connect()` on a new
 * connection sends the `hello`, resubscribes from those offsets and resends
 * those publishes (their event ids make the resend exactly-once). Events at
 * or before a subscription's last offset are dropped, so the application sees
 * each event once, with no gap.
 *
 * Requests made while disconnected are sent on the next `connect()`; the
 * latest `cursor` and `presence` per session too.
 */
export class ClientProtocol {
  /** The token the next `hello` sends ({@link refresh} replaces it). */
  token: string | undefined;
  /** The device id sent in `hello`. */
  readonly device: string | undefined;
  /** `open` between {@link connect} and the end of that connection. */
  state: State = "closed";

  private readonly limits: FrameLimits;
  private events: ServerMessage[] = [];
  private readonly outbox: Outbox;
  private closing: Close | undefined;
  private lastRid = 0;
  private readonly subs = new Map<string, SubscriptionState>();
  private readonly subRids = new Map<string, string>(); // rid → session
  private readonly publishes = new Map<string, string>(); // rid → its JSON text
  private readonly unsent = new Map<string, Cursor | SetPresence>(); // type + session → latest

  /** @throws RangeError - `token` or `device` is malformed. */
  constructor(options: ClientProtocolOptions = {}) {
    if (options.token !== undefined) checked({ type: "refresh", token: options.token });
    if (options.device !== undefined) {
      checked({ type: "hello", token: "-", device: options.device });
    }
    this.token = options.token;
    this.device = options.device;
    this.limits = {
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      maxMessages: options.maxMessages ?? DEFAULT_MAX_MESSAGES,
    };
    this.outbox = new Outbox(this.limits);
  }

  // Public attributes

  /** Each subscribed session's resume offset (the last offset received). */
  get subscriptions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [session, sub] of this.subs) out[session] = sub.offset;
    return out;
  }

  /** The `rid` of each publish not answered yet. */
  get pendingPublishes(): string[] {
    return [...this.publishes.keys()];
  }

  // Connection

  /**
   * Start a new connection: hello, resubscribe, resend what is pending.
   *
   * @throws Error - the current connection is still open, or there is no token.
   */
  connect(): void {
    if (this.state === "open") throw new Error("connect() while connected");
    if (this.token === undefined) throw new Error("connect() without a token");
    this.state = "open";
    this.closing = undefined;
    this.outbox.clear();
    const hello: ClientMessage =
      this.device === undefined
        ? { type: "hello", token: this.token }
        : { type: "hello", token: this.token, device: this.device };
    this.outbox.add(encodeMessage(hello));
    for (const [session, sub] of this.subs) {
      this.outbox.add(
        encodeMessage({ type: "subscribe", rid: sub.rid, session, offset: sub.offset, view: sub.view }),
      );
    }
    for (const text of this.publishes.values()) this.outbox.add(text);
    for (const message of this.unsent.values()) this.outbox.add(encodeMessage(message));
    this.unsent.clear();
  }

  /**
   * Handle a text frame from the server; a bad one closes 4409 or 4413.
   *
   * Messages of types this version does not know are skipped: a newer server
   * may send them.
   */
  receiveText(text: string): void {
    if (this.state !== "open") return;
    let messages: ServerMessage[];
    try {
      const items = decodeFrame(text, this.limits);
      messages = items.filter((item) => !unknown(item)).map(parseServerMessage);
    } catch (exc) {
      if (!(exc instanceof ProtocolError)) throw exc;
      this.outbox.clear();
      this.state = "closed";
      this.closing = Close.truncated(
        exc.code === ErrorCode.FRAME_TOO_LARGE || exc.code === ErrorCode.TOO_MANY_MESSAGES
          ? CloseCode.FRAME_TOO_LARGE
          : CloseCode.PROTOCOL_ERROR,
        exc.message,
      );
      return;
    }
    for (const message of messages) this.receive(message);
  }

  /**
   * Record that the connection closed with `code`; return whether to reconnect.
   *
   * After a terminal close the pending publishes are dropped (they failed);
   * subscriptions are kept, for a `connect()` that the application may still
   * decide on (say, with a new token).
   */
  receiveClose(code: number, _reason = ""): boolean {
    this.state = "closed";
    this.outbox.clear();
    this.closing = undefined;
    const retryable = isRetryable(code);
    if (!retryable) this.publishes.clear();
    return retryable;
  }

  /** Close the connection normally (1000) after what is queued. */
  close(): void {
    if (this.state === "open") {
      this.state = "closed";
      this.closing = new Close(CloseCode.NORMAL_CLOSURE);
    }
  }

  /**
   * The server's messages since the last call: answers to this client's
   * requests, new events (each once), presence, gone, errors.
   */
  eventsReceived(): ServerMessage[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  /** Frames to send, in order, then perhaps the close to send after them. */
  dataToSend(): (string | Close)[] {
    const out: (string | Close)[] = this.outbox.frames();
    if (this.closing !== undefined) {
      out.push(this.closing);
      this.closing = undefined;
    }
    return out;
  }

  // Requests

  /**
   * Subscribe to a session's events after `offset`; return the `rid`.
   *
   * @throws RangeError - already subscribed, or a value is malformed.
   */
  subscribe(session: string, offset: string = START, view: View = "raw"): string {
    if (this.subs.has(session)) throw new RangeError(`already subscribed to ${JSON.stringify(session)}`);
    const message = checked({ type: "subscribe", rid: this.nextRid(), session, offset, view } as const);
    this.subs.set(session, { rid: message.rid, offset, view });
    this.subRids.set(message.rid, session);
    this.send(message);
    return message.rid;
  }

  /** Stop a subscription (if there is one). */
  unsubscribe(session: string): void {
    const sub = this.subs.get(session);
    if (sub !== undefined) {
      this.subs.delete(session);
      this.subRids.delete(sub.rid);
      this.send({ type: "unsubscribe", session });
    }
  }

  /**
   * Publish event drafts, all or nothing; return the `rid`.
   *
   * @throws RangeError - a value is malformed, an event holds NaN, or the
   *   publish does not fit in one frame.
   */
  publish(
    session: string,
    events: readonly (EventDraft | JSONObject)[],
    options: { expectedOffset?: string } = {},
  ): string {
    const message = checked({
      type: "publish",
      rid: this.nextRid(),
      session,
      events: [...events] as EventDraft[],
      ...(options.expectedOffset === undefined ? {} : { expected_offset: options.expectedOffset }),
    } as const);
    const text = encodeMessage(message);
    if (utf8Size(text) + 2 > this.limits.maxFrameBytes) {
      throw new RangeError(`publish larger than a frame (${this.limits.maxFrameBytes} bytes)`);
    }
    this.publishes.set(message.rid, text);
    if (this.state === "open") this.outbox.add(text);
    return message.rid;
  }

  /**
   * Move this participant's read cursor in `session` to `offset`.
   *
   * @throws RangeError - a value is malformed.
   */
  sendCursor(session: string, offset: string): void {
    this.sendLatest(checked({ type: "cursor", session, offset }));
  }

  /**
   * Set this device's presence status in `session`.
   *
   * @throws RangeError - a value is malformed.
   */
  sendPresence(session: string, status: PresenceStatus): void {
    this.sendLatest(checked({ type: "presence", session, status }));
  }

  /**
   * Replace the token, on this connection and for later hellos.
   *
   * @throws RangeError - `token` is malformed.
   */
  refresh(token: string): void {
    const message = checked({ type: "refresh", token } as const);
    this.token = token;
    if (this.state === "open") this.outbox.add(encodeMessage(message));
  }

  // Private methods

  private nextRid(): string {
    this.lastRid += 1;
    return String(this.lastRid);
  }

  private send(message: ClientMessage): void {
    // While disconnected, connect() sends what the subscriptions then are.
    if (this.state === "open") this.outbox.add(encodeMessage(message));
  }

  private sendLatest(message: Cursor | SetPresence): void {
    // While disconnected, the latest per session waits for connect().
    if (this.state === "open") {
      this.outbox.add(encodeMessage(message));
    } else {
      this.unsent.set(`${message.type}\n${message.session}`, message);
    }
  }

  private receive(message: ServerMessage): void {
    switch (message.type) {
      case "events":
        this.receiveEvents(message);
        return;
      case "subscribed": {
        const sub = this.subs.get(message.session);
        if (sub !== undefined && sub.rid === message.rid) {
          if (sub.offset === START || sub.offset === NOW || message.offset > sub.offset) {
            sub.offset = message.offset;
          }
          this.events.push(message);
        }
        return;
      }
      case "published":
        if (this.publishes.delete(message.rid)) this.events.push(message);
        return;
      case "error":
        if (message.rid !== undefined) {
          this.publishes.delete(message.rid);
          const session = this.subRids.get(message.rid);
          if (session !== undefined) {
            this.subRids.delete(message.rid);
            this.subs.delete(session);
          }
        }
        this.events.push(message);
        return;
      case "presence":
        if (this.subs.has(message.session)) this.events.push(message);
        return;
      case "gone": {
        const sub = this.subs.get(message.session);
        if (sub !== undefined) {
          this.subs.delete(message.session);
          this.subRids.delete(sub.rid);
          this.events.push(message);
        }
        return;
      }
    }
  }

  private receiveEvents(message: Events): void {
    const sub = this.subs.get(message.session);
    if (sub === undefined) return;
    let last = sub.offset;
    const fresh: Event[] = [];
    for (const event of message.events) {
      if (last === START || last === NOW || event.offset > last) {
        fresh.push(event);
        last = event.offset;
      }
    }
    if (fresh.length > 0) {
      sub.offset = last;
      this.events.push({ type: "events", session: message.session, events: fresh });
    }
  }
}

/** Whether `item` is a message of a type this version does not know. */
function unknown(item: unknown): boolean {
  if (item === null || typeof item !== "object" || Array.isArray(item)) return false;
  const type = (item as JSONObject)["type"];
  return typeof type === "string" && !SERVER_TYPES.has(type);
}
